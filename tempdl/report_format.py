"""Rendering a `stats.Report` as a terminal table, JSON or CSV (exact integers in the latter two)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

from tempdl.stats import Report

COLUMNS = ("links_issued", "attempts", "ok", "partial", "refused", "bytes_sent")


def human_bytes(size: int) -> str:
    """`12.4 MiB`-style sizes for people; exact integers stay in JSON and CSV."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _period_text(report: Report) -> str:
    since = report.period.since.isoformat() if report.period.since else "the beginning"
    until = report.period.until.isoformat() if report.period.until else "now"
    return f"{since} .. {until}"


def as_table(report: Report) -> str:
    totals = report.totals
    if totals.attempts == 0 and totals.links_issued == 0:
        return "No downloads yet: no links issued and no download attempts in this period.\n"
    refused = ", ".join(f"{reason} {count}" for reason, count in sorted(totals.refused.items())) or "none"
    lines = [
        f"Period: {_period_text(report)} (time zone {report.timezone})",
        f"Links issued:        {totals.links_issued}",
        f"Distinct recipients: {totals.distinct_recipients}",
        f"Download attempts:   {totals.attempts}",
        f"  ok:                {totals.downloads_ok}",
        f"  partial:           {totals.downloads_partial}",
        f"  refused:           {sum(totals.refused.values())} ({refused})",
        f"Bytes served:        {human_bytes(totals.bytes_served)} ({totals.bytes_served} bytes)",
        "",
    ]
    header = (report.by, "links", "attempts", "ok", "partial", "refused", "bytes")
    body = [
        (
            row.key,
            str(row.links_issued),
            str(row.attempts),
            str(row.ok),
            str(row.partial),
            str(row.refused),
            human_bytes(row.bytes_sent),
        )
        for row in report.rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *body]) for i in range(len(header))]
    for cells in [header, *body]:
        pairs = enumerate(zip(cells, widths, strict=True))
        padded = [cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in pairs]
        lines.append("  ".join(padded))
    return "\n".join(lines) + "\n"


def as_dict(report: Report) -> dict:
    return {
        "since": report.period.since.isoformat() if report.period.since else None,
        "until": report.period.until.isoformat() if report.period.until else None,
        "timezone": report.timezone,
        "by": report.by,
        "totals": dataclasses.asdict(report.totals),
        "rows": [dataclasses.asdict(row) for row in report.rows],
    }


def as_json(report: Report) -> str:
    return json.dumps(as_dict(report), ensure_ascii=False, indent=2) + "\n"


def as_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow((report.by, *COLUMNS))
    for row in report.rows:
        writer.writerow((row.key, *(getattr(row, column) for column in COLUMNS)))
    return buffer.getvalue()


FORMATS = {"table": as_table, "json": as_json, "csv": as_csv}
