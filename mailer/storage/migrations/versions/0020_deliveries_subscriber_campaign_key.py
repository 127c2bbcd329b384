"""deliveries: one unique index on (subscriber_id, campaign_id) instead of the unique
(campaign_id, subscriber_id) constraint and a separate subscriber_id index

On PostgreSQL the claim (pending -> sending) and the record (sending -> accepted) of every
recipient change ``status``, which an index holds, so neither is a HOT update: each adds an
entry for the new row version to every full index of the table (migration 0018 says which
partial indexes it skips). Two of those full indexes held the same two columns: the unique
constraint (campaign_id, subscriber_id), which keeps anyone from being drawn twice, and
ix_deliveries_subscriber_id, which serves a person's history, erasure and the subscribers
foreign key (ON DELETE SET NULL). One unique index on (subscriber_id, campaign_id) does both
jobs: uniqueness does not depend on the column order, lookups by subscriber use its first
column, and the lookups by campaign never needed the old constraint
(ix_deliveries_campaign_status and ix_deliveries_pending start with campaign_id). Eight index
entries per recipient instead of ten.

On SQLite the old constraint is part of the table definition, so the table is rebuilt
(batch mode keeps its partial indexes); SQLite touches only the indexes whose columns change,
so there it saves space and not time.

Revision ID: 0020
Revises: 0018
"""
from alembic import op

revision = '0020'
down_revision = '0018'
branch_labels = None
depends_on = None

OLD = 'uq_deliveries_campaign_id_subscriber_id'
NEW = 'uq_deliveries_subscriber_id_campaign_id'


def upgrade() -> None:
    op.drop_index('ix_deliveries_subscriber_id', table_name='deliveries')
    with op.batch_alter_table('deliveries') as batch_op:
        # The new key first: on PostgreSQL uniqueness is never absent, even mid-transaction.
        batch_op.create_unique_constraint(NEW, ['subscriber_id', 'campaign_id'])
        batch_op.drop_constraint(OLD, type_='unique')


def downgrade() -> None:
    with op.batch_alter_table('deliveries') as batch_op:
        batch_op.create_unique_constraint(OLD, ['campaign_id', 'subscriber_id'])
        batch_op.drop_constraint(NEW, type_='unique')
    op.create_index('ix_deliveries_subscriber_id', 'deliveries', ['subscriber_id'],
                    unique=False)
