"""audience_snapshots: audience counts kept for big lists

On a million subscribers, counting who a query reaches walks every follower of its topic
(0.12–0.29 s on PostgreSQL for one count), and the campaign, segment and schedule pages each
counted on every view. On a list above MAILER_AUDIENCE_LIVE_LIMIT people those pages now show
the last count with the time it was made and recount it in the background
(``mailer.delivery.reach``); one row per query text (its SHA-256).

Revision ID: 0019
Revises: 0018
"""
import sqlalchemy as sa
from alembic import op

from mailer.storage.base import UTCDateTime

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audience_snapshots',
        sa.Column('query_key', sa.String(length=64), nullable=False),
        sa.Column('query', sa.Text(), nullable=False),
        sa.Column('total', sa.Integer(), nullable=False),
        sa.Column('now', sa.Integer(), nullable=False),
        sa.Column('computed_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('refreshing_since', UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('query_key', name=op.f('pk_audience_snapshots')),
    )


def downgrade() -> None:
    op.drop_table('audience_snapshots')
