"""`stats`: the download and bandwidth report, read-only, as a table, JSON or CSV."""

from __future__ import annotations

import argparse
import sys

from tempdl.audit.open import open_for_reports
from tempdl.config.settings import Settings
from tempdl.errors import CommandError
from tempdl.reports import formats as report_format
from tempdl.reports.stats import Period, Report, Totals, build_report


def stats(args: argparse.Namespace, settings: Settings) -> int:
    """Print the report. Read-only: it never migrates or writes the audit database, so it is safe
    next to a running server, against a replica or on a copy; no database yet is an empty report."""
    try:
        period = Period(args.since, args.until, settings.zone)
    except ValueError:
        raise CommandError(f"--since {args.since} is after --until {args.until}") from None
    report = Report(period, args.by, Totals(), [])
    engine = open_for_reports(settings.database_url)
    if engine is not None:
        try:
            report = build_report(engine, period, args.by)
        finally:
            engine.dispose()
    sys.stdout.write(report_format.FORMATS[args.format](report))
    return 0
