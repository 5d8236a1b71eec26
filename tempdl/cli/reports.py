"""`stats`: the download and bandwidth report, read-only, as a table, JSON or CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url

from tempdl.audit.engine import make_engine
from tempdl.audit.tables import DownloadAttempt
from tempdl.config.settings import Settings
from tempdl.errors import CommandError
from tempdl.reports import formats as report_format
from tempdl.reports.stats import Period, Report, Totals, build_report


def _report_engine(settings: Settings) -> Engine | None:
    """The audit database to report on; None when there is none yet (and none is created)."""
    url = make_url(settings.database_url)
    is_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    if is_file and not Path(str(url.database)).is_file():
        return None
    engine = make_engine(settings.database_url)
    if not inspect(engine).has_table(DownloadAttempt.__tablename__):
        engine.dispose()
        return None
    return engine


def stats(args: argparse.Namespace, settings: Settings) -> int:
    """Print the report. Read-only: it never migrates or writes the audit database, so it is safe
    next to a running server, against a replica or on a copy; no database yet is an empty report."""
    try:
        period = Period(args.since, args.until, settings.zone)
    except ValueError:
        raise CommandError(f"--since {args.since} is after --until {args.until}") from None
    report = Report(period, args.by, Totals(), [])
    engine = _report_engine(settings)
    if engine is not None:
        try:
            report = build_report(engine, period, args.by)
        finally:
            engine.dispose()
    sys.stdout.write(report_format.FORMATS[args.format](report))
    return 0
