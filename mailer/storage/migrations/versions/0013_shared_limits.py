"""rate_hits and login_lockouts: rate limits and login lockouts every web process shares

The per-IP and per-address limits (signups, signup emails, logins) were counted in each web
process's memory, so several processes behind one address multiplied every limit. They are
now counted in ``rate_hits`` (one row per bucket, hashed key and window; ``mailer.storage.
limits``). ``login_lockouts`` counts failed logins in a row per typed user name, which locks
that name for a growing time (``mailer.web.lockout``).

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

from mailer.storage.base import UTCDateTime

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'rate_hits',
        sa.Column('bucket', sa.String(length=40), nullable=False),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('window_start', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('hits', sa.Integer(), nullable=False),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('bucket', 'key_hash', 'window_start', name=op.f('pk_rate_hits')),
    )
    op.create_index(op.f('ix_rate_hits_expires_at'), 'rate_hits', ['expires_at'])
    op.create_table(
        'login_lockouts',
        sa.Column('name_hash', sa.String(length=64), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('last_failure_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('locked_until', UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('name_hash', name=op.f('pk_login_lockouts')),
    )
    op.create_index(op.f('ix_login_lockouts_last_failure_at'), 'login_lockouts',
                    ['last_failure_at'])


def downgrade() -> None:
    op.drop_index(op.f('ix_login_lockouts_last_failure_at'), table_name='login_lockouts')
    op.drop_table('login_lockouts')
    op.drop_index(op.f('ix_rate_hits_expires_at'), table_name='rate_hits')
    op.drop_table('rate_hits')
