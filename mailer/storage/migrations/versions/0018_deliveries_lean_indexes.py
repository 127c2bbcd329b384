"""deliveries: the batch index holds only rows in flight, the message id index only rows
that have one

Every recipient's row is written twice around its hand-off: the claim (pending -> sending,
with a batch id) and the record (sending -> accepted, with the provider's message id). Both
change ``status``, which ix_deliveries_campaign_status holds, so on PostgreSQL neither can be
a HOT update: each writes a new row version and adds an entry for it to EVERY index of the
table, whether its columns changed or not (fillfactor, migration 0005, only keeps the version
on the same page). With seven indexes that was twelve index entries per recipient.

* ix_deliveries_batch now holds only rows whose status is ``sending``. Every lookup by batch
  id is of rows in flight (reading a claim back, releasing it, marking it in doubt, extending
  its lease); the record of a batch finds its rows by primary key. The record's new row
  version is no longer ``sending``, so it adds no entry here, and the index stays as small as
  the number of rows in flight.
* ix_deliveries_provider_message_id now holds only rows with a message id. Webhook matching
  asks for given message ids, which a partial index on ``IS NOT NULL`` serves; the claim's
  row version has none, so it adds no entry here.

Ten index entries per recipient instead of twelve on PostgreSQL; on SQLite, which only
touches the indexes whose columns change, the claim writes into a small batch index instead
of one with an entry per row ever sent.

Revision ID: 0018
Revises: 0017
"""
import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

SENDING = sa.text("status = 'sending'")
HANDED_OFF = sa.text("provider_message_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index('ix_deliveries_batch', table_name='deliveries')
    op.create_index('ix_deliveries_batch', 'deliveries', ['batch_id'], unique=False,
                    postgresql_where=SENDING, sqlite_where=SENDING)
    op.drop_index('ix_deliveries_provider_message_id', table_name='deliveries')
    op.create_index('ix_deliveries_provider_message_id', 'deliveries',
                    ['provider_message_id'], unique=False,
                    postgresql_where=HANDED_OFF, sqlite_where=HANDED_OFF)


def downgrade() -> None:
    op.drop_index('ix_deliveries_provider_message_id', table_name='deliveries')
    op.create_index('ix_deliveries_provider_message_id', 'deliveries',
                    ['provider_message_id'], unique=False)
    op.drop_index('ix_deliveries_batch', table_name='deliveries')
    op.create_index('ix_deliveries_batch', 'deliveries', ['batch_id'], unique=False)
