"""deliveries: a partial index of the pending rows of each campaign, in id order

Every claim asks for "the next pending rows of this campaign in id order". The only index
that could answer, ix_deliveries_campaign_status, orders equal (campaign, status) entries by
their place in the table on PostgreSQL, not by id, so PostgreSQL either read every pending
row of the campaign, joined each to its subscriber and sorted them to keep the first batch,
or walked the primary key from the campaign's first row, past every settled one. Either way
a claim cost grew with the campaign (a 300,000-row send took six times as long as a
100,000-row one). This index holds only pending rows, as (campaign_id, id): a claim reads its
batch from the start of the index and stops. A row leaves it when it is claimed, so it stays
small. SQLite already reads pending rows in id order from ix_deliveries_campaign_status (its
index entries end with the rowid); it gets the same index so both schemas agree.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_index('ix_deliveries_pending', 'deliveries', ['campaign_id', 'id'],
                    unique=False, postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade() -> None:
    op.drop_index('ix_deliveries_pending', table_name='deliveries')
