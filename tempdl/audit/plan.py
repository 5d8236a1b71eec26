"""The serving statements compiled for sqlite3: `statements.SERVING` as plain `Spec`s.

Run where SQLAlchemy is loaded anyway: in the child that checks the migrations before `serve`
starts (`tempdl.audit.startup_child.migrate_in_child` hands the specs back), or in any process
that already holds an engine (commands, tests). Every value's conversion is SQLAlchemy's own
choice for its type, checked here: a type whose values sqlite3 cannot take as they are, and that
`tempdl.audit.prepared` does not convert, stops the compile rather than write a wrong value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import ClauseElement, Executable
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

from tempdl.audit import statements
from tempdl.audit.held_ids import IdList
from tempdl.audit.prepared import Kind, Spec, Value
from tempdl.audit.tables import UTCDateTime

_DIALECT = sqlite_dialect.dialect()


def _kind(type_: TypeEngine[Any], *, result: bool) -> Kind:
    if isinstance(type_, UTCDateTime):
        return "utc"
    if isinstance(type_, IdList) and not result:
        return "ids"
    impl = type_.dialect_impl(_DIALECT)
    processor = impl.result_processor(_DIALECT, None) if result else impl.bind_processor(_DIALECT)
    if processor is not None:
        raise TypeError(f"{type_!r} converts its values on SQLite, and the fast path does not")
    return None


def _plain(value: Any) -> Any:
    """A str subclass (SQLAlchemy's `quoted_name`, an `Outcome`) as a plain str: unpickling a
    spec must not import what made it."""
    return str.__str__(value) if isinstance(value, str) else value


def compile_for_sqlite(statement: ClauseElement | Executable, column_keys: Sequence[str] | None = None) -> Spec:
    """One statement as sqlite3 runs it: its text, where each `?` takes its value, the columns."""
    keys = list(column_keys) if column_keys else None
    compiled = cast(SQLCompiler, cast(ClauseElement, statement).compile(dialect=_DIALECT, column_keys=keys))
    given = {name for name, bind in compiled.binds.items() if bind.required or bind.value is None}
    expanded = compiled.construct_expanded_state({name: None for name in given})  # IN (...) of constants
    values = []
    for name in expanded.positiontup or ():
        if name in given:
            values.append(Value(_plain(name), _kind(compiled.binds[name].type, result=False)))
        else:
            constant = expanded.parameters[name]
            values.append(Value(None, constant=_plain(constant)))
    selected = getattr(statement, "selected_columns", ())
    columns = tuple((_plain(column.key), _kind(column.type, result=True)) for column in selected)
    return Spec(_plain(expanded.statement), tuple(values), columns)


def serving_plan() -> dict[str, Spec]:
    """Every statement of `statements.SERVING`, compiled for sqlite3."""
    return {name: compile_for_sqlite(statement, keys) for name, (statement, keys) in statements.SERVING.items()}
