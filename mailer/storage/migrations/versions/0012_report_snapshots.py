"""report_snapshots: a campaign's report as last computed, refreshed in the background

A million-recipient campaign's report aggregates every delivery (by topic, by county, the
slowest domains, events over time): seconds per view on PostgreSQL. Big campaigns show the
stored report instead, with the time it was computed, and a view of a stale one starts a
refresh (``mailer.tracking.snapshots``), as listmonk refreshes its materialized views.

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from mailer.storage.base import UTCDateTime

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'report_snapshots',
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('computed_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('document', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'),
                  nullable=False),
        sa.Column('refreshing_since', UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('campaign_id'),
    )


def downgrade() -> None:
    op.drop_table('report_snapshots')
