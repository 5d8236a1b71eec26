"""What `serve` leaves to a forked child, so the server itself never imports SQLAlchemy or Alembic.

The child migrates the schema, compiles the serving statements for sqlite3
(`tempdl.audit.plan`), hands them back through a pipe, and then brings the report rollups up to
date while the server already answers. Alembic and SQLAlchemy cost the child ~25 MiB, which it
gives back when it exits; the server keeps only what serving needs.
"""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from tempdl.audit.prepared import Spec

if TYPE_CHECKING:
    from sqlalchemy import Engine

MIGRATION_WAIT_SECONDS = 300


def migrate_in_child(
    database_url: str, *, rollup_zone: str | None = None
) -> tuple[dict[str, Spec], BaseProcess | None]:
    """Migrate `database_url` in a child; its serving plan, and the child if it still rolls up.

    Raises RuntimeError with the child's error message when the migration fails. Where fork is
    not available, all of it runs in this process (the rollups on a thread).
    """
    if not hasattr(os, "fork"):
        return _migrate_here(database_url, rollup_zone), None
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_migrate_and_report, args=(database_url, sender, rollup_zone), name="tempdl-migrate", daemon=True
    )
    child.start()
    sender.close()
    if receiver.poll(MIGRATION_WAIT_SECONDS):
        message, plan = receiver.recv()
    else:
        message, plan = f"the migration did not finish within {MIGRATION_WAIT_SECONDS} s", None
        child.terminate()
    receiver.close()
    if message or rollup_zone is None:
        child.join()
    if message:
        raise RuntimeError(message)
    return plan, (child if rollup_zone is not None else None)


def _migrate_here(database_url: str, rollup_zone: str | None) -> dict[str, Spec]:
    from tempdl.audit import rollups

    engine, plan = _migrated(database_url)
    if rollup_zone is not None:
        rollups.bring_up_to_date_in_background(engine, rollup_zone)
    return plan


def _migrate_and_report(database_url: str, sender: Any, rollup_zone: str | None) -> None:
    from tempdl.audit import rollups

    try:
        engine, plan = _migrated(database_url)
        sender.send(("", plan))
    except Exception as error:  # reported to the parent as one line
        sender.send((f"{type(error).__name__}: {getattr(error, 'orig', None) or error}", None))
        return
    sender.close()
    if rollup_zone is not None:
        rollups.bring_up_to_date(engine, rollup_zone)
    engine.dispose()


def _migrated(database_url: str) -> tuple[Engine, dict[str, Spec]]:
    """The engine on `database_url`, its schema at the newest revision, and the serving plan."""
    from tempdl.audit.engine import make_engine, upgrade
    from tempdl.audit.plan import serving_plan

    engine = make_engine(database_url)
    upgrade(engine)
    return engine, serving_plan()
