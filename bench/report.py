"""The one table: rows = servers, columns = figures, each cell with its ratios to
nginx and to Tornado's StaticFileHandler from the same run, plus tempdl's targets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

NGINX, TORNADO, FASTAPI, TEMPDL = "nginx", "tornado", "fastapi", "tempdl"


@dataclass
class Column:
    key: str
    title: str
    fmt: str  # format of the value
    better: str  # "higher" or "lower": only for the reader, ratios are always this ÷ reference


COLUMNS = [
    Column("rps", "4 KiB req/s", "{:,.0f}", "higher"),
    Column("p99", "4 KiB p99 ms", "{:.2f}", "lower"),
    Column("cpu_req", "4 KiB server CPU µs/req", "{:,.0f}", "lower"),
    Column("mib1", "256 MiB, 1 client MiB/s", "{:,.0f}", "higher"),
    Column("mib4", "256 MiB, 4 clients MiB/s", "{:,.0f}", "higher"),
    Column("cpu_gib", "server CPU s/GiB", "{:.3f}", "lower"),
    Column("rss_start", "RSS at start MiB", "{:.1f}", "lower"),
    Column("rss_peak4", "peak RSS, 4 clients MiB", "{:.1f}", "lower"),
    Column("slow_growth", "RSS growth, 4 slow readers MiB", "{:.1f}", "lower"),
    Column("idle_rss", "RSS with 1,000 idle conns MiB", "{:.1f}", "lower"),
    Column("idle_cost", "cost of 1,000 idle conns MiB", "{:.1f}", "lower"),
]
WECHAT_COLUMNS = [
    Column("wechat_rps", "WeChat keyword→link req/s", "{:,.0f}", "higher"),
    Column("wechat_p99", "WeChat p99 ms, 16 conns", "{:.2f}", "lower"),
]
HUGE_COLUMN = Column("huge_growth", "RSS growth, 4 slow readers of 1 GiB MiB", "{:.1f}", "lower")


@dataclass
class Target:
    column: str
    text: str
    ok: Callable[[dict, dict], bool | None]  # (results by server, tempdl's figures) -> verdict


def _ratio(results: dict, server: str, key: str, ref: str) -> float | None:
    a, b = results.get(server, {}).get(key), results.get(ref, {}).get(key)
    if a is None or b in (None, 0):
        return None
    return a / b


def _ratio_at_least(key: str, ref: str, factor: float):
    def check(results: dict, _row: dict) -> bool | None:
        r = _ratio(results, TEMPDL, key, ref)
        return None if r is None else r >= factor

    return check


def _ratio_at_most(key: str, ref: str, factor: float):
    def check(results: dict, _row: dict) -> bool | None:
        r = _ratio(results, TEMPDL, key, ref)
        return None if r is None else r <= factor

    return check


def _value_below(key: str, limit: float, inclusive: bool):
    def check(_results: dict, row: dict) -> bool | None:
        v = row.get(key)
        return None if v is None else (v <= limit if inclusive else v < limit)

    return check


# The targets from the project's issues (#20, Performance II, where it restated #7's), judged on
# tempdl's row.
TARGETS = [
    Target("mib1", "≥0.95× nginx", _ratio_at_least("mib1", NGINX, 0.95)),
    Target("mib4", "≥0.95× nginx", _ratio_at_least("mib4", NGINX, 0.95)),
    Target("cpu_gib", "≤1.0× nginx", _ratio_at_most("cpu_gib", NGINX, 1.0)),
    Target("rps", "≥1.0× SFH", _ratio_at_least("rps", TORNADO, 1.0)),
    Target("cpu_req", "≤1.0× SFH", _ratio_at_most("cpu_req", TORNADO, 1.0)),
    # The Tornado row's WeChat figure is a handler that answers every POST with a fixed XML body.
    Target("wechat_rps", "≥0.5× fixed-XML Tornado", _ratio_at_least("wechat_rps", TORNADO, 0.5)),
    Target("wechat_p99", "<10 ms", _value_below("wechat_p99", 10, inclusive=False)),
    Target("rss_peak4", "≤45 MiB", _value_below("rss_peak4", 45, inclusive=True)),
    # "1,000 idle keep-alive connections cost under 50 MiB": the cost is what they add.
    Target("idle_cost", "<50 MiB", _value_below("idle_cost", 50, inclusive=False)),
]


def _cell(results: dict, server: str, col: Column) -> str:
    v = results.get(server, {}).get(col.key)
    if v is None:
        return "–"
    parts = [col.fmt.format(v)]
    ratios = [_ratio(results, server, col.key, ref) for ref in (NGINX, TORNADO)]
    if any(r is not None for r in ratios):
        parts.append("(" + " / ".join("–" if r is None else f"{r:.2f}" for r in ratios) + ")")
    return " ".join(parts)


def table(results: dict, names: dict, order: list[str], huge: bool, wechat: bool) -> str:
    cols = COLUMNS + ([HUGE_COLUMN] if huge else []) + (WECHAT_COLUMNS if wechat else [])
    lines = ["| server | " + " | ".join(c.title for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for server in order:
        if server not in results:
            continue
        row = results[server]
        name = names.get(server, server)
        if row.get("error"):
            name += " **FAILED**"
        lines.append(f"| {name} | " + " | ".join(_cell(results, server, c) for c in cols) + " |")
        if server == TEMPDL and "rps" in row:
            verdicts = {}
            for t in TARGETS:
                v = t.ok(results, row)
                verdicts[t.column] = f"{'–' if v is None else ('**PASS**' if v else '**FAIL**')} {t.text}"
            lines.append("| tempdl targets | " + " | ".join(verdicts.get(c.key, "") for c in cols) + " |")
    return "\n".join(lines)


def legend() -> str:
    return (
        "Each cell: value (ratio to nginx / ratio to Tornado StaticFileHandler), ratio = this ÷ reference. "
        "Higher is better for req/s and MiB/s; lower is better for latency, CPU and memory."
    )


def failures(results: dict, names: dict, order: list[str]) -> str:
    out = []
    for server in order:
        err = results.get(server, {}).get("error")
        if err:
            out.append(f"- **{names.get(server, server)}**: {err}")
    return "\n".join(out)
