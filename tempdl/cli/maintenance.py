"""`db upgrade`, `prune` and `ingest-nginx-log`: keeping the audit database current and small.

They run from cron and deploy scripts next to a running server; each prints one summary line.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from sqlalchemy import delete, exists, select

from tempdl.audit.engine import make_engine, upgrade
from tempdl.audit.log import AuditLog
from tempdl.audit.nginx_log import ingest
from tempdl.audit.tables import DownloadAttempt, Issuance
from tempdl.config.settings import Settings
from tempdl.errors import CommandError
from tempdl.timeutil import utc_now


def open_audit(settings: Settings) -> AuditLog:
    """The audit log the writing commands use, migrated to the newest schema first."""
    engine = make_engine(settings.database_url)
    upgrade(engine)
    return AuditLog(engine)


def db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    open_audit(settings).close()
    print("database is at the newest schema")
    return 0


def prune(args: argparse.Namespace, settings: Settings) -> int:
    """Delete attempts older than N days, then issuances that old that no attempt refers to.

    One transaction: an interrupted prune removes nothing. An issuance some kept attempt still
    names stays, so every attempt row keeps its link, recipient and file.
    """
    if args.older_than < 1:
        raise CommandError("--older-than must be at least 1 day")
    cutoff = utc_now() - datetime.timedelta(days=args.older_than)
    attempts, issuances = DownloadAttempt.__table__, Issuance.__table__
    audit = open_audit(settings)
    try:
        with audit.engine.begin() as connection:
            removed_attempts = connection.execute(delete(attempts).where(attempts.c.started_at < cutoff)).rowcount
            referenced = exists(select(attempts.c.id).where(attempts.c.issuance_id == issuances.c.id))
            removed_issuances = connection.execute(
                delete(issuances).where(issuances.c.created_at < cutoff, ~referenced)
            ).rowcount
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
    audit = open_audit(settings)
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
