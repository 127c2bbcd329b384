"""deliveries pages keep 15 % free (PostgreSQL fillfactor 85)

A delivery row is rewritten several times in its life: claimed, handed off, accepted, then
once or twice more by provider events (delivered, first open, first click). PostgreSQL writes
a new version of the row on every update; with room left on the row's own page the new
version stays there, and when no indexed column changed (an open, a click) it is a HOT
update that adds no index entries at all. On full pages every update moved the row to another
page and added an entry to each of the table's six indexes. Pages written from now on keep
the room; SQLite has no such setting.

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE deliveries SET (fillfactor = 85)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE deliveries RESET (fillfactor)')
