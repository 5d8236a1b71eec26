"""`db upgrade`, `prune` and `ingest-nginx-log`: keeping the audit database current and small.

They run from cron and deploy scripts next to a running server; each prints one summary line.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from tempdl.audit import rollups
from tempdl.audit.nginx_log import ingest
from tempdl.audit.open import open_audit
from tempdl.config.settings import Settings
from tempdl.errors import CommandError
from tempdl.timeutil import utc_now


def db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    """Migrate, then build or extend the report rollups (so the first dashboard is not the slow one)."""
    audit = open_audit(settings.database_url)
    try:
        rollups.bring_up_to_date(audit.engine, settings.zone.key)
    finally:
        audit.close()
    print("database is at the newest schema")
    return 0


def prune(args: argparse.Namespace, settings: Settings) -> int:
    """Delete attempts older than N days, then issuances that old that no attempt refers to."""
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
        raise CommandError("no line is in the tempdl log_format; see deploy/nginx-x-accel.conf (log_format tempdl)")
    return 0
