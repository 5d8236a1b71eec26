"""Rendering a `stats.Report`: a table for people, JSON and CSV for scripts (exact integers there).

The JSON document is the same whether it comes from `python server.py stats --format json` or from
`GET /admin/stats.json`, so scripts can use either.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # `human_bytes` is also the landing page's: followers' pages need no report code
    from tempdl.reports.period import Period
    from tempdl.reports.stats import Report

COLUMNS = ("links_issued", "attempts", "ok", "partial", "refused", "bytes_sent")
EMPTY_MESSAGE = "No downloads yet: no links were issued and nothing was downloaded in this period."


def human_bytes(size: int) -> str:
    """`12.4 MiB`-style sizes for people; JSON and CSV keep exact integers."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def period_text(period: Period) -> str:
    """`2026-11-01 to 2026-11-30`, `all time`, `since 2026-11-01`... (local days, both included)."""
    if period.since and period.until:
        return period.since.isoformat() if period.since == period.until else f"{period.since} to {period.until}"
    if period.since:
        return f"since {period.since}"
    if period.until:
        return f"up to {period.until}"
    return "all time"


def _counts_text(counts: dict[str, int]) -> str:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{name} {count}" for name, count in ranked)


def as_table(report: Report) -> str:
    totals = report.totals
    if totals.is_empty:
        return f"{EMPTY_MESSAGE}\n(period: {period_text(report.period)}, time zone {report.timezone})\n"
    refused = f" ({_counts_text(totals.refused)})" if totals.refused else ""
    other = f"Other answers:       {_counts_text(totals.other)}" if totals.other else None
    lines = [
        f"Period:              {period_text(report.period)} (time zone {report.timezone})",
        f"Links issued:        {totals.links_issued}",
        f"  never downloaded:  {totals.links_unused}",
        f"Distinct recipients: {totals.distinct_recipients}",
        f"Download attempts:   {totals.attempts}",
        f"  complete (ok):     {totals.downloads_ok}",
        f"  partial:           {totals.downloads_partial}",
        f"  refused:           {totals.refused_total}{refused}",
        *([other] if other else []),
        f"Bytes served:        {human_bytes(totals.bytes_served)} ({totals.bytes_served} bytes)",
        "",
    ]
    header = (report.by, "links", "attempts", "ok", "partial", "refused", "bytes")
    body = [
        (row.key, *(str(getattr(row, column)) for column in COLUMNS[:-1]), human_bytes(row.bytes_sent))
        for row in report.rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *body]) for i in range(len(header))]
    for cells in [header, *body]:
        padded = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines) + "\n"


def as_dict(report: Report) -> dict[str, Any]:
    period = report.period
    return {
        "since": period.since.isoformat() if period.since else None,
        "until": period.until.isoformat() if period.until else None,
        "timezone": report.timezone,
        "start_utc": period.start.isoformat() if period.start else None,
        "end_utc": period.end.isoformat() if period.end else None,
        "by": report.by,
        "totals": dataclasses.asdict(report.totals),
        "rows": [dataclasses.asdict(row) for row in report.rows],
    }


def as_json(report: Report) -> str:
    return json.dumps(as_dict(report), ensure_ascii=False, indent=2) + "\n"


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a cell as a formula (OWASP's list of CSV injection triggers)."""


def spreadsheet_safe(cell: object) -> object:
    """A text cell that a spreadsheet would run as a formula, with a leading `'` to keep it text.

    Numbers pass unchanged (the report's counts are never negative); any text does not, so an
    openid such as `=HYPERLINK(...)` or a file id starting with `-` opens as the text it is.
    """
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def as_csv(report: Report) -> str:
    """One row per breakdown key; the first column is named after the breakdown (day, file...).

    Every CSV tempdl writes goes through here, its cells made `spreadsheet_safe`.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    # Python 3.11's writer quotes only the line terminator's characters: a lone CR would go out
    # bare and split the row in any reader, so a row holding one is written fully quoted.
    quoting_writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow((report.by, *COLUMNS))
    for row in report.rows:
        cells = [spreadsheet_safe(cell) for cell in (row.key, *(getattr(row, column) for column in COLUMNS))]
        has_cr = any(isinstance(cell, str) and "\r" in cell for cell in cells)
        (quoting_writer if has_cr else writer).writerow(cells)
    return buffer.getvalue()


FORMATS = {"table": as_table, "json": as_json, "csv": as_csv}
