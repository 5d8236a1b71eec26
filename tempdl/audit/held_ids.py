"""`among_ids(column, name)`: "column is one of a list of row ids" with the list as one value.

The limits leave out of their counts the open rows this process holds itself (see
`tempdl.links.reservations`), and how many there are changes with every call. An expanding
`IN` would be a different SQL text for every length, which a statement compiled once for the
SQLite fast path cannot be. So the list travels as one value: a JSON array that SQLite reads
with `json_each`, an array for PostgreSQL's `= ANY`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, String, TypeDecorator, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from tempdl.audit.prepared import ids_json


class IdList(TypeDecorator[list[int]]):
    """A list of row ids: JSON text on SQLite, a BIGINT[] elsewhere."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String())
        return dialect.type_descriptor(ARRAY(BigInteger))

    def process_bind_param(self, value, dialect):
        ids = list(value or ())
        return ids_json(ids) if dialect.name == "sqlite" else [int(row_id) for row_id in ids]


class AmongIds(ColumnElement[bool]):
    inherit_cache = True
    type = Boolean()
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy declares it an instance attribute)
        ("column", InternalTraversal.dp_clauseelement),
        ("ids", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any], name: str) -> None:
        self.column = column
        self.ids = bindparam(name, type_=IdList())


def among_ids(column: ColumnElement[Any], name: str) -> AmongIds:
    """`column` is one of the ids the caller gives as `name` (a list, maybe empty)."""
    return AmongIds(column, name)


@compiles(AmongIds)
def _compile_any(element: AmongIds, compiler: SQLCompiler, **kwargs: Any) -> str:
    return f"{compiler.process(element.column, **kwargs)} = ANY({compiler.process(element.ids, **kwargs)})"


@compiles(AmongIds, "sqlite")
def _compile_json_each(element: AmongIds, compiler: SQLCompiler, **kwargs: Any) -> str:
    column, ids = compiler.process(element.column, **kwargs), compiler.process(element.ids, **kwargs)
    return f"{column} IN (SELECT value FROM json_each({ids}))"
