"""Alembic environment: runs inside tempdl with the connection it is handed; no alembic.ini."""

from alembic import context

from tempdl.audit.tables import metadata

config = context.config
target_metadata = metadata


def run_migrations_online() -> None:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("tempdl runs its migrations online only: python server.py db upgrade")
run_migrations_online()
