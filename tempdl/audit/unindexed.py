"""`Unindexed`: a column SQLite's planner may not drive a query by (reports and rollups use it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal


class Unindexed(ColumnElement[Any]):
    """A column SQLite's planner may not use an index for: `+column` (sqlite.org/optoverview.html,
    "disqualifying WHERE clause terms"); other databases see the plain column.

    Without statistics, SQLite takes any range on started_at for selective and reads half the
    table through that index, then sorts it for the GROUP BY. With the range disqualified, it
    streams the covering index that is already in GROUP BY order (migration 0002) and checks the
    range on each entry, which is several times faster; a test pins those plans.
    """

    inherit_cache = True
    # SQLAlchemy declares it an instance attribute, so a ClassVar would not type; it is never mutated
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]  # noqa: RUF012

    def __init__(self, column: ColumnElement) -> None:
        self.column = column
        self.type = column.type


@compiles(Unindexed)
def _compile_unindexed(element: Unindexed, compiler: SQLCompiler, **kwargs: Any) -> str:
    return compiler.process(element.column, **kwargs)


@compiles(Unindexed, "sqlite")
def _compile_unindexed_sqlite(element: Unindexed, compiler: SQLCompiler, **kwargs: Any) -> str:
    return "+" + compiler.process(element.column, **kwargs)
