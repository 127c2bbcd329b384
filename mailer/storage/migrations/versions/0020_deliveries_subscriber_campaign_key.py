"""deliveries: one unique index on (subscriber_id, campaign_id) instead of the unique
(campaign_id, subscriber_id) constraint and a separate subscriber_id index; references to
campaigns and subscribers without foreign key constraints

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

Drawing the audience inserts one row per recipient, and PostgreSQL checks both foreign keys
of every inserted row with a query of its own that share-locks the referenced row (every
subscriber of the audience locked, and the lock logged, by one draw): about 60 % of the
draw's server CPU (2.1 of 3.5 s at 300,000 recipients, measured). The references stay, indexed as before (the campaign by
ix_deliveries_campaign_status, the subscriber by the new key); ``mailer.delivery.records.
Delivery`` says why they cannot dangle in a way that matters: rows are drawn only from the
campaign and subscribers read in the same statement, campaigns are never deleted, and
erasure clears ``subscriber_id`` itself (migration 0003 did the same for the event log).

On SQLite the old constraint and the foreign keys are part of the table definition, so the
table is rebuilt once (batch mode keeps its partial indexes).

Revision ID: 0020
Revises: 0019
"""
import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

OLD = 'uq_deliveries_campaign_id_subscriber_id'
NEW = 'uq_deliveries_subscriber_id_campaign_id'
#: (name, column, referred table, ON DELETE) of the foreign keys this drops.
REFERENCES = (
    ('fk_deliveries_campaign_id_campaigns', 'campaign_id', 'campaigns', 'CASCADE'),
    ('fk_deliveries_subscriber_id_subscribers', 'subscriber_id', 'subscribers', 'SET NULL'),
)


def upgrade() -> None:
    op.drop_index('ix_deliveries_subscriber_id', table_name='deliveries')
    with op.batch_alter_table('deliveries') as batch_op:
        # The new key first: on PostgreSQL uniqueness is never absent, even mid-transaction.
        batch_op.create_unique_constraint(NEW, ['subscriber_id', 'campaign_id'])
        batch_op.drop_constraint(OLD, type_='unique')
        for name, _column, _table, _action in REFERENCES:
            batch_op.drop_constraint(name, type_='foreignkey')


def downgrade() -> None:
    conn = op.get_bind()  # what the constraints' ON DELETE would have done meanwhile
    conn.execute(sa.text("DELETE FROM deliveries WHERE campaign_id NOT IN "
                         "(SELECT id FROM campaigns)"))
    conn.execute(sa.text("UPDATE deliveries SET subscriber_id = NULL WHERE subscriber_id "
                         "IS NOT NULL AND subscriber_id NOT IN (SELECT id FROM subscribers)"))
    with op.batch_alter_table('deliveries') as batch_op:
        for name, column, table, action in REFERENCES:
            batch_op.create_foreign_key(name, table, [column], ['id'], ondelete=action)
        batch_op.create_unique_constraint(OLD, ['campaign_id', 'subscriber_id'])
        batch_op.drop_constraint(NEW, type_='unique')
    op.create_index('ix_deliveries_subscriber_id', 'deliveries', ['subscriber_id'],
                    unique=False)
