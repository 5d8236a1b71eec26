"""What each CLI subcommand does, given parsed arguments and settings. Output goes to stdout."""

from __future__ import annotations

import argparse
import datetime
import re
import sys
from pathlib import Path

from tempdl.audit.open import open_audit, open_for_reports
from tempdl.config.settings import Settings
from tempdl.errors import CommandError, LinkInvalid
from tempdl.links.catalog import Catalog
from tempdl.links.issuing import Issuer
from tempdl.links.tokens import LinkSigner
from tempdl.reports import formats as report_format
from tempdl.reports.stats import Period, Report, Totals, build_report
from tempdl.timeutil import utc_now


def serve(args: argparse.Namespace, settings: Settings) -> int:
    from tempdl.cli.serve import run_server

    return run_server(settings)


def db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    open_audit(settings.database_url).close()
    print("database is at the newest schema")
    return 0


def issue(args: argparse.Namespace, settings: Settings) -> int:
    offered = Catalog(settings.files_dir, settings.files).by_id(args.file_id)
    if offered is None:
        raise CommandError(f"no file with id {args.file_id!r} is on offer (see files_dir and [[files]])")
    audit = open_audit(settings.database_url)
    try:
        issued = Issuer(settings, audit, LinkSigner(settings.secret_keys)).issue(
            offered,
            recipient=args.recipient,
            channel="cli",
            now=utc_now(),
            ttl=args.ttl,
            max_downloads=args.max_downloads,
        )
    finally:
        audit.close()
    print(issued.url)
    return 0


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


def _issuance_id(target: str, settings: Settings) -> int:
    if target.isdigit():
        return int(target)
    token = re.sub(r"^.*/api/get_file/", "", target.strip()).split("?")[0]
    try:
        return LinkSigner(settings.secret_keys).read(token).issuance_id
    except LinkInvalid:
        raise CommandError("that is neither an issuance id nor a link signed by this server") from None


def revoke(args: argparse.Namespace, settings: Settings) -> int:
    issuance_id = _issuance_id(args.target, settings)
    audit = open_audit(settings.database_url)
    try:
        if not audit.revoke(issuance_id, utc_now()):
            raise CommandError(f"no issuance with id {issuance_id}")
    finally:
        audit.close()
    print(f"revoked issuance {issuance_id}")
    return 0


def prune(args: argparse.Namespace, settings: Settings) -> int:
    """Delete attempts older than N days, then issuances that old no attempt refers to (`AuditLog.prune`)."""
    if args.older_than < 1:
        raise CommandError("--older-than must be at least 1 day")
    cutoff = utc_now() - datetime.timedelta(days=args.older_than)
    audit = open_audit(settings.database_url)
    try:
        removed_attempts, removed_issuances = audit.prune(cutoff)
    finally:
        audit.close()
    print(
        f"removed {removed_attempts} download attempts and {removed_issuances} issuances "
        f"started or created before {cutoff:%Y-%m-%d %H:%M} UTC"
    )
    return 0


def ingest_nginx_log(args: argparse.Namespace, settings: Settings) -> int:
    """Finish x-accel downloads from nginx's access log; one summary line (for cron's mail)."""

    from tempdl.audit.nginx_log import ingest

    paths = [Path(name) for name in args.log_files]
    for path in paths:
        if not path.is_file():
            raise CommandError(f"{path}: no such log file")
    audit = open_audit(settings.database_url)
    try:
        result = ingest(audit, paths)
    except (OSError, EOFError) as error:  # unreadable, or a truncated .gz
        raise CommandError(f"cannot read the log: {getattr(error, 'strerror', None) or error}") from None
    finally:
        audit.close()
    print(result.summary())
    if result.lines and len(result.malformed_lines) == result.lines:
        raise CommandError("no line is in the tempdl log_format; see deploy/nginx.conf (log_format tempdl)")
    return 0
