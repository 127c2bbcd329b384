"""Alembic environment: runs on the connection ``mailer.storage.db.upgrade`` hands over, or on
``sqlalchemy.url`` when invoked from the alembic command line."""

from alembic import context
from sqlalchemy import create_engine

from mailer.schema import metadata
from mailer.storage.db import include_object

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        _migrate(connection)


def _migrate(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
