"""releases: trigram indexes so the dashboard's release search reads no bodies, and an
index in the list's order (newest release date first)

The releases page searches titles and bodies for every word typed (``LIKE '%…%'``). Without
an index that reads every body the search window holds (5,000 releases of a few kilobytes:
about half a second on a busy PostgreSQL). A trigram index answers a word of three
characters or more directly (``mailer.ingest.search``):

- PostgreSQL: ``pg_trgm`` (created by 0011 where allowed) and GIN indexes on ``title`` and
  ``body``, which serve ``ILIKE '%…%'``. Without the extension the migration says so and goes
  on: search stays correct, reading the bounded window instead.
- SQLite: an FTS5 table with the trigram tokenizer over (title, body), its rowid the
  release's id, kept in step by triggers on insert, update and delete, and filled from the
  existing rows.

The releases list is sorted by date, newest first, then by id; ``ix_releases_newest`` holds
that order (undated releases last), so a page of 25 and the search window's edge are read
from the index instead of sorting every release.

Revision ID: 0017
Revises: 0015
"""
import logging

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0015'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

SQLITE = [
    "CREATE VIRTUAL TABLE release_search USING fts5(title, body, tokenize='trigram')",
    "INSERT INTO release_search(rowid, title, body) SELECT id, title, coalesce(body, '') "
    "FROM releases",
    "CREATE TRIGGER release_search_insert AFTER INSERT ON releases BEGIN "
    "INSERT INTO release_search(rowid, title, body) "
    "VALUES (new.id, new.title, coalesce(new.body, '')); END",
    "CREATE TRIGGER release_search_update AFTER UPDATE OF title, body ON releases BEGIN "
    "UPDATE release_search SET title = new.title, body = coalesce(new.body, '') "
    "WHERE rowid = old.id; END",
    "CREATE TRIGGER release_search_delete AFTER DELETE ON releases BEGIN "
    "DELETE FROM release_search WHERE rowid = old.id; END",
]


def upgrade() -> None:
    bind = op.get_bind()
    # SQLite sorts NULL first, so descending puts undated releases last, as PostgreSQL's
    # NULLS LAST does.
    nulls = "" if bind.dialect.name == "sqlite" else " NULLS LAST"
    op.execute(f"CREATE INDEX ix_releases_newest ON releases (date DESC{nulls}, id DESC)")
    if bind.dialect.name == "sqlite":
        for statement in SQLITE:
            op.execute(statement)
        return
    if not _trigram_extension(bind):
        return
    op.execute("CREATE INDEX ix_releases_title_trgm ON releases USING gin (title gin_trgm_ops)")
    op.execute("CREATE INDEX ix_releases_body_trgm ON releases USING gin (body gin_trgm_ops)")


def _trigram_extension(bind) -> bool:
    """Create pg_trgm if it is missing; False (with a warning) where that is not allowed."""
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first():
        return True
    savepoint = bind.begin_nested()
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as exc:
        savepoint.rollback()
        log.warning("pg_trgm is not available (%s); release search will read the newest "
                    "releases' bodies", str(exc.orig).splitlines()[0])
        return False
    savepoint.commit()
    return True


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_releases_newest")
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS release_search_{name}")
        op.execute("DROP TABLE IF EXISTS release_search")
        return
    op.execute("DROP INDEX IF EXISTS ix_releases_body_trgm")
    op.execute("DROP INDEX IF EXISTS ix_releases_title_trgm")
