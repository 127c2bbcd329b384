"""the event log keeps each event's JSON text as posted (``json``, not ``jsonb``)

``delivery_events.raw`` is only ever stored and read back whole, never queried into. As
``jsonb`` PostgreSQL parsed every posted event into its binary form (about a quarter of
inserting a webhook post of 1,000 events) and the webhook first re-serialized each decoded
object for it. As ``json`` the text SendGrid posted is validated and kept byte for byte.
SQLite keeps JSON as text either way: nothing to do there.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE delivery_events ALTER COLUMN raw TYPE json USING raw::json')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE delivery_events ALTER COLUMN raw TYPE jsonb USING raw::jsonb')
