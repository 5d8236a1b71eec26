"""`Run`: the serving statements executed by name, on sqlite3 or through SQLAlchemy, alike.

The audit store's methods say what they run once (`run.one("traffic_since", values)`); on
SQLite a `SQLiteRun` executes the statement's compiled text on a plain sqlite3 connection, and
elsewhere a `CoreRun` executes the SQLAlchemy object of the same name. Results are plain tuples
either way, their timestamps aware UTC datetimes.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from tempdl.audit.prepared import Prepared

if TYPE_CHECKING:
    from sqlalchemy import Connection


class Run(Protocol):
    """One connection's statements by name, inside the caller's transaction."""

    dialect: str

    def one(self, name: str, values: Mapping[str, Any]) -> tuple[Any, ...]: ...

    def first(self, name: str, values: Mapping[str, Any]) -> tuple[Any, ...] | None: ...

    def all(self, name: str, values: Mapping[str, Any]) -> Sequence[tuple[Any, ...]]: ...

    def insert(self, name: str, values: Mapping[str, Any]) -> int:
        """Run a one-row INSERT; the new row's id."""
        ...

    def change(self, name: str, values: Mapping[str, Any]) -> int:
        """Run an UPDATE or DELETE; how many rows it changed."""
        ...


class SQLiteRun:
    dialect = "sqlite"

    def __init__(self, connection: sqlite3.Connection, plan: Mapping[str, Prepared]) -> None:
        self._connection = connection
        self._plan = plan

    def _execute(self, name: str, values: Mapping[str, Any]) -> tuple[Prepared, sqlite3.Cursor]:
        prepared = self._plan[name]
        return prepared, self._connection.execute(prepared.sql, prepared.parameters(values))

    def first(self, name: str, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        prepared, cursor = self._execute(name, values)
        row = cursor.fetchone()
        return None if row is None else prepared.row(row)

    def one(self, name: str, values: Mapping[str, Any]) -> tuple[Any, ...]:
        row = self.first(name, values)
        if row is None:
            raise LookupError(f"{name} found no row")
        return row

    def all(self, name: str, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        prepared, cursor = self._execute(name, values)
        return [prepared.row(row) for row in cursor.fetchall()]

    def insert(self, name: str, values: Mapping[str, Any]) -> int:
        return int(self._execute(name, values)[1].lastrowid or 0)

    def change(self, name: str, values: Mapping[str, Any]) -> int:
        return self._execute(name, values)[1].rowcount


@functools.cache
def _core_statements() -> dict[str, Any]:
    from tempdl.audit import statements  # SQLAlchemy: loaded only where a CoreRun runs

    return {**statements.SERVING, **statements.POSTGRESQL_ONLY}


class CoreRun:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._statements = _core_statements()
        self.dialect = connection.dialect.name

    def _execute(self, name: str, values: Mapping[str, Any]):
        return self._connection.execute(self._statements[name][0], dict(values))

    def first(self, name: str, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        row = self._execute(name, values).first()
        return None if row is None else tuple(row)

    def one(self, name: str, values: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(self._execute(name, values).one())

    def all(self, name: str, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._execute(name, values).all()]

    def insert(self, name: str, values: Mapping[str, Any]) -> int:
        key = self._execute(name, values).inserted_primary_key
        if key is None:
            raise TypeError(f"{name} is not a single-row INSERT")
        return int(key[0])

    def change(self, name: str, values: Mapping[str, Any]) -> int:
        return self._execute(name, values).rowcount
