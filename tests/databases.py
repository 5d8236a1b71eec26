"""The test suite's databases: SQLite always, PostgreSQL for the tests that must hold on both.

One throw-away PostgreSQL cluster serves the whole session (starting one takes a second or two);
each test gets its own database, created with `CREATE DATABASE ... TEMPLATE` from a template
that the migrations already ran on (a file copy: a few tens of milliseconds), and dropped after
the test with `WITH (FORCE)`, so a server the test left connected cannot keep it alive.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tempdl.audit.engine import make_engine, upgrade
from tests.engines import PostgresInstance, skip_or_fail_without_postgres, throwaway_postgres

BOTH_DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]

TEMPLATE = "tempdl_migrated"


class PostgresDatabases:
    """Fresh databases on demand in one running cluster."""

    def __init__(self, instance: PostgresInstance) -> None:
        self.instance = instance
        self._numbers = itertools.count(1)
        self._admin = _admin_connection(instance)
        self._admin.execute(f"CREATE DATABASE {TEMPLATE}")
        engine = make_engine(instance.url_for(TEMPLATE))
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        self._admin.execute(f"ALTER DATABASE {TEMPLATE} WITH ALLOW_CONNECTIONS false")

    @classmethod
    @contextlib.contextmanager
    def started(cls, base_dir: Path) -> Iterator[PostgresDatabases]:
        skip_or_fail_without_postgres()
        with throwaway_postgres(base_dir) as instance:
            databases = cls(instance)
            try:
                yield databases
            finally:
                databases._admin.close()

    @contextlib.contextmanager
    def fresh(self, *, migrated: bool = True) -> Iterator[str]:
        """A new database for one test (empty, or at the newest schema); dropped afterwards."""
        name = f"test_{next(self._numbers)}"
        template = TEMPLATE if migrated else "template0"
        self._admin.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
        try:
            yield self.instance.url_for(name)
        finally:
            self._admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _admin_connection(instance: PostgresInstance):
    import psycopg

    return psycopg.connect(
        host=instance.host, port=instance.port, user=instance.user, dbname="postgres", autocommit=True
    )
