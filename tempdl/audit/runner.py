"""How audit statements run: on one dedicated thread, or inline on the event loop with group commit.

The server runs `AuditLog` methods through `AuditRunner.run`, so a busy or slow database never
stalls the event loop that is streaming other downloads, and SQLite sees a single writer. On
SQLite the methods marked `hot` first run inline (see `tempdl.audit.sqlite`), and those marked
`writes` then wait for the one commit of their event-loop turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, TypeVar

from tempdl.audit import sqlite_setup
from tempdl.audit.database_file import DatabaseFile
from tempdl.audit.prepared import Spec, prepare_all
from tempdl.audit.runs import CoreRun, Run
from tempdl.audit.sqlite import SQLiteHotPath
from tempdl.audit.sqlite_setup import waiting_until
from tempdl.config.parsers import sqlite_file
from tempdl.errors import AuditUnavailable

if TYPE_CHECKING:
    from sqlalchemy import Engine

T = TypeVar("T")
CHECKPOINT_EVERY_WRITES = 500  # inline writes between two WAL checkpoints on the audit thread
log = logging.getLogger("tempdl.audit")


def _marked(method: Callable[..., Any], mark: str) -> bool:
    """Whether a method (or a functools.partial of one) carries a `hot`/`writes` mark."""
    target = method.func if isinstance(method, functools.partial) else method
    return getattr(target, mark, False)


def hot(method: Callable[..., T]) -> Callable[..., T]:
    """Mark a method that runs on every download: on SQLite it may run inline (see `run`)."""
    method.hot = True  # type: ignore[attr-defined]
    return method


def _database_errors() -> tuple[type[BaseException], ...]:
    """What a failing database raises: sqlite3's errors, and SQLAlchemy's where it is loaded."""
    sqlalchemy_errors = sys.modules.get("sqlalchemy.exc")
    found: tuple[type[BaseException], ...] = (sqlite3.Error, AuditUnavailable)
    return (*found, sqlalchemy_errors.DBAPIError) if sqlalchemy_errors is not None else found


def _sqlite_file_of(database: Engine | str) -> str | None:
    if isinstance(database, str):
        return sqlite_file(database)
    if database.dialect.name != "sqlite" or database.url.database in (None, "", ":memory:"):
        return None
    return database.url.database


def writes(method: Callable[..., T]) -> Callable[..., T]:
    """Mark a method that writes: its success ends an incident of an unwritable database."""
    method.writes = True  # type: ignore[attr-defined]
    return method


class AuditRunner:
    """The thread, the inline path and the group commit that `AuditLog` runs its statements on."""

    def __init__(
        self,
        database: Engine | str,
        *,
        server_id: str | None = None,
        plan: Mapping[str, Spec] | None = None,
        background: BaseProcess | None = None,
    ) -> None:
        """`database`: an engine, or a URL whose engine is made only if something needs it (on
        a SQLite file, serving never does). `plan`: the serving statements compiled for sqlite3
        (`tempdl.audit.plan`), compiled here when not given. `background`: a child still working
        for this store (the rollups' catch-up), stopped by `close`."""
        self._url = database if isinstance(database, str) else None
        self._engine = None if isinstance(database, str) else database
        self.server_id = server_id
        """Written into every attempt row this store opens (see `tempdl.cli.instance`)."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tempdl-audit")
        self.failing = False  # True from a failed write until the next successful one
        path = _sqlite_file_of(database)
        self._hot: SQLiteHotPath | None = None
        self._file: DatabaseFile | None = None
        if path is not None:
            if plan is None:
                from tempdl.audit.plan import serving_plan

                plan = serving_plan()
            self._hot = SQLiteHotPath(path, sqlite_setup.SQLITE_BUSY_TIMEOUT_MS, prepare_all(plan))
            self._file = DatabaseFile(path)
        self._background = background
        self._inline_writes = 0
        self._pending_commit: asyncio.Future[None] | None = None

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, made on first use: reports, maintenance, other databases."""
        if self._engine is None:
            from tempdl.audit.engine import make_engine

            assert self._url is not None
            self._engine = make_engine(self._url)
        return self._engine

    @property
    def dialect(self) -> str:
        return "sqlite" if self._hot is not None else self.engine.dialect.name

    @contextlib.contextmanager
    def reading(self) -> Iterator[Run]:
        """Statements by name outside a transaction (the limits' counts)."""
        if self._hot is not None:
            yield self._hot.run()
        else:
            with self.engine.connect() as connection:
                yield CoreRun(connection)

    @contextlib.contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[Run]:
        """Statements by name in one transaction, committed at the end of the block.

        `immediate`: on SQLite, take the write lock first (BEGIN IMMEDIATE), so a count made in
        the transaction cannot be overtaken by another writer before the insert that follows it.
        """
        if self._hot is not None:
            with self._hot.transaction(immediate=immediate) as run:
                yield run
            return
        with self.engine.begin() as connection:
            if immediate and connection.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield CoreRun(connection)

    def _insert_alone(self, name: str, values: Mapping[str, Any]) -> int:
        """One serving INSERT by name, the new row's id: on SQLite the hot path's write (committed
        at once, or with its event-loop turn's group when impatient), elsewhere its own transaction."""
        if self._hot is not None:
            return self._hot.write(name, values)
        with self.transaction() as run:
            return run.insert(name, values)

    def _change_alone(self, name: str, values: Mapping[str, Any]) -> None:
        """One serving UPDATE by name, written like `_insert_alone`."""
        if self._hot is not None:
            self._hot.write(name, values)
            return
        with self.transaction() as run:
            run.change(name, values)

    async def run(self, method: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run one of this store's methods without blocking the event loop, and wait for it.

        Hot-path methods on SQLite first run right here, impatiently (see `tempdl.audit.sqlite`);
        everything else, and a hot call that met a lock, runs on the audit thread, where it
        waits for a lock only until `AUDIT_WAIT_SECONDS` after this call began: a request queued
        behind another's wait gets what is left of its own time, so under a lock held elsewhere
        every request is answered within that time however many wait (they used to wait one
        busy timeout each, one after another). A database error becomes `AuditUnavailable`,
        logged once when an incident starts and once when a write succeeds again, not on every
        request in between. A write to a SQLite file deleted or replaced under the server is
        refused before it is tried (`DatabaseFile`).
        """
        deadline = time.monotonic() + sqlite_setup.AUDIT_WAIT_SECONDS
        try:
            if self._file is not None and _marked(method, "writes"):
                self._file.check()
            if self._hot is not None and _marked(method, "hot"):
                try:
                    return self._succeeded(method, await self._run_inline(method, args, kwargs))
                except sqlite3.OperationalError as error:
                    if "locked" not in str(error) and "busy" not in str(error):
                        raise
            loop = asyncio.get_running_loop()
            call = functools.partial(method, *args, **kwargs)
            result = await loop.run_in_executor(self._executor, _waiting_until, deadline, call)
        except _database_errors() as error:
            reason = str(getattr(error, "orig", error))
            if not self.failing:
                self.failing = True
                log.error("event=audit_unavailable error=%r: answering 503 until it can be written", reason)
            raise AuditUnavailable(reason) from error
        return self._succeeded(method, result)

    def _succeeded(self, method: Callable[..., T], result: T) -> T:
        if self.failing and _marked(method, "writes"):
            self.failing = False
            log.warning("event=audit_recovered: the audit database takes writes again")
        return result

    async def _run_inline(self, method: Callable[..., T], args: tuple, kwargs: dict) -> T:
        """Run a hot method on the event loop; a write returns once its group commit is done."""
        assert self._hot is not None
        try:
            with self._hot.impatient():
                result = method(*args, **kwargs)
        except sqlite3.Error as error:
            self._abandon_group(error)
            raise
        if _marked(method, "writes"):
            await self._group_commit()
            self._inline_writes += 1
            if self._inline_writes >= CHECKPOINT_EVERY_WRITES:  # the impatient connection leaves them to us
                self._inline_writes = 0
                self._executor.submit(self._hot.checkpoint)
        return result

    async def _group_commit(self) -> None:
        """Wait for the one commit that covers every inline write of this event-loop turn."""
        if self._pending_commit is None:
            loop = asyncio.get_running_loop()
            self._pending_commit = loop.create_future()
            loop.call_soon(self._commit_group)
        await asyncio.shield(self._pending_commit)

    def _commit_group(self) -> None:
        group, self._pending_commit = self._pending_commit, None
        assert group is not None and self._hot is not None
        try:
            self._hot.commit_impatient()
        except sqlite3.Error as error:
            group.set_exception(error)
        else:
            group.set_result(None)
            self._hot.start_wal_over_if_due()

    def _abandon_group(self, error: Exception) -> None:
        """A write failed mid-group: roll back, and every write of the group fails with it."""
        assert self._hot is not None
        self._hot.rollback_impatient()
        group, self._pending_commit = self._pending_commit, None
        if group is not None:
            group.set_exception(error)

    def upkeep(self) -> None:
        """What a running server asks of the store every few seconds, without waiting for anyone:
        the audit thread cuts a long SQLite WAL back, and the rollups' child is collected once it
        has finished, so it does not linger as a zombie."""
        if self._hot is not None:
            self._executor.submit(_waiting_until, time.monotonic(), self._hot.cut_wal_back)
        if self._background is not None and not self._background.is_alive():  # is_alive() waits for it
            self._background = None

    def close(self) -> None:
        """Wait for queued writes to finish, then release the database."""
        self._executor.shutdown(wait=True)
        if self._hot is not None:
            self._hot.close()
        if self._engine is not None:
            self._engine.dispose()
        if self._background is not None:
            if self._background.is_alive():
                self._background.terminate()  # the rollups are a cache: the next start goes on
            self._background.join()


def _waiting_until(deadline: float, call: Callable[[], T]) -> T:
    with waiting_until(deadline):
        return call()
