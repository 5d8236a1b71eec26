"""Audit statements as sqlite3 runs them, and the values they carry, without SQLAlchemy.

A serving process on SQLite never imports SQLAlchemy (14.3 MiB resident): its statements are
compiled from the table objects by `tempdl.audit.plan`, in the child that checks the migrations,
and come back as plain `Spec`s. Here a `Spec` becomes a `Prepared`: the SQL text, and how each
value is picked and converted. Timestamps become the very text SQLAlchemy's `DateTime` writes on
SQLite (`2026-11-30 08:15:00.000000`), so rows from both paths compare and sort alike.
"""

from __future__ import annotations

import datetime
import json
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Kind = str | None
"""How a value is converted on its way to or from sqlite3: "utc", "ids", or None (as it is)."""


def naive_utc(value: datetime.datetime) -> datetime.datetime:
    if value.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return value.astimezone(datetime.UTC).replace(tzinfo=None)


def to_sqlite_text(value: datetime.datetime | None) -> str | None:
    return None if value is None else naive_utc(value).isoformat(" ", "microseconds")


def from_sqlite_text(text: str | None) -> datetime.datetime | None:
    return None if text is None else datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)


def ids_json(ids: Sequence[int]) -> str:
    """A list of row ids as the JSON array `json_each` reads (see `tempdl.audit.held_ids`)."""
    return json.dumps([int(row_id) for row_id in ids])


TO_SQLITE: dict[str, Callable[[Any], Any]] = {"utc": to_sqlite_text, "ids": ids_json}
FROM_SQLITE: dict[str, Callable[[Any], Any]] = {"utc": from_sqlite_text}


@dataclass(frozen=True)
class Value:
    """One `?` of a statement: a value the caller gives by `name`, or the statement's own
    `constant` (an outcome, a LIMIT) when `name` is None; `kind` says how it is converted."""

    name: str | None
    kind: Kind = None
    constant: Any = None


@dataclass(frozen=True)
class Spec:
    """One statement compiled for sqlite3, as plain data (it crosses a pipe from the child):
    its SQL text, a `Value` per `?`, and the result's columns with their kinds."""

    sql: str
    values: tuple[Value, ...]
    columns: tuple[tuple[str, Kind], ...] = ()


class Prepared:
    """A `Spec` ready to run: each call only picks its values and converts the few that need it.

    Without constants the values are picked in C (`itemgetter`), and the same SQL string goes
    to sqlite3 every time, whose statement cache then reuses the prepared statement.
    """

    def __init__(self, spec: Spec) -> None:
        self.sql = spec.sql
        self._values = spec.values
        names = [value.name for value in spec.values]
        if None in names:
            self._pick: Callable[[Mapping[str, Any]], Sequence[Any]] = self._pick_with_constants
        elif not names:
            self._pick = lambda values: ()
        elif len(names) == 1:
            pick_one = operator.itemgetter(names[0])
            self._pick = lambda values: (pick_one(values),)
        else:
            self._pick = operator.itemgetter(*names)
        self._convert = [
            (index, TO_SQLITE[value.kind]) for index, value in enumerate(spec.values) if value.name and value.kind
        ]
        self._results = [(index, FROM_SQLITE[kind]) for index, (_, kind) in enumerate(spec.columns) if kind]

    def _pick_with_constants(self, values: Mapping[str, Any]) -> list[Any]:
        return [value.constant if value.name is None else values[value.name] for value in self._values]

    def parameters(self, values: Mapping[str, Any]) -> list[Any]:
        picked = list(self._pick(values))
        for index, convert in self._convert:
            picked[index] = convert(picked[index])
        return picked

    def row(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """A result row with its values converted (timestamps to aware datetimes)."""
        if not self._results:
            return tuple(row)
        values = list(row)
        for index, convert in self._results:
            values[index] = convert(values[index])
        return tuple(values)


def prepare_all(specs: Mapping[str, Spec]) -> dict[str, Prepared]:
    return {name: Prepared(spec) for name, spec in specs.items()}
