"""subscribers: trigram indexes so the staff search box finds people without a scan

Searching a million subscribers for a piece of a name or address (``LIKE '%hans%'``) read
every row: 2.84 s per dashboard page on PostgreSQL. A trigram index answers a substring of
three characters or more directly (``subscribers.search``):

- PostgreSQL: the ``pg_trgm`` extension and GIN indexes on ``email`` (stored lower-cased)
  and ``lower(name)``. Where the extension cannot be created (a managed database without the
  right), the migration says so and goes on: search stays correct, only slower.
- SQLite: an FTS5 table with the trigram tokenizer over (email, name), its rowid the
  subscriber's id, kept in step by triggers on insert, update and delete, and filled from
  the existing rows.

Revision ID: 0011
Revises: 0008
"""
import logging

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0008'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

SQLITE = [
    "CREATE VIRTUAL TABLE subscriber_search USING fts5(email, name, tokenize='trigram')",
    "INSERT INTO subscriber_search(rowid, email, name) SELECT id, email, coalesce(name, '') "
    "FROM subscribers",
    "CREATE TRIGGER subscriber_search_insert AFTER INSERT ON subscribers BEGIN "
    "INSERT INTO subscriber_search(rowid, email, name) "
    "VALUES (new.id, new.email, coalesce(new.name, '')); END",
    "CREATE TRIGGER subscriber_search_update AFTER UPDATE OF email, name ON subscribers BEGIN "
    "UPDATE subscriber_search SET email = new.email, name = coalesce(new.name, '') "
    "WHERE rowid = old.id; END",
    "CREATE TRIGGER subscriber_search_delete AFTER DELETE ON subscribers BEGIN "
    "DELETE FROM subscriber_search WHERE rowid = old.id; END",
]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE:
            op.execute(statement)
        return
    if not _trigram_extension(bind):
        return
    op.execute("CREATE INDEX ix_subscribers_email_trgm ON subscribers "
               "USING gin (email gin_trgm_ops)")
    op.execute("CREATE INDEX ix_subscribers_name_trgm ON subscribers "
               "USING gin (lower(name) gin_trgm_ops)")


def _trigram_extension(bind) -> bool:
    """Create pg_trgm if it is missing; False (with a warning) where that is not allowed."""
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first():
        return True
    savepoint = bind.begin_nested()
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as exc:
        savepoint.rollback()
        log.warning("pg_trgm is not available (%s); subscriber search will scan",
                    str(exc.orig).splitlines()[0])
        return False
    savepoint.commit()
    return True


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS subscriber_search_{name}")
        op.execute("DROP TABLE IF EXISTS subscriber_search")
        return
    op.execute("DROP INDEX IF EXISTS ix_subscribers_name_trgm")
    op.execute("DROP INDEX IF EXISTS ix_subscribers_email_trgm")
