"""outgoing_mail: system emails queued by web requests, sent by the queue runner

A signup used to send its confirmation inside the request, so a slow provider slowed every
signup. The request now writes the email here in its own transaction and answers; the queue
runner (``mailer.delivery.mailqueue``) claims each row with a lease and sends it exactly once.

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from mailer.storage.base import UTCDateTime

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'outgoing_mail',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=True),
        sa.Column('template', sa.String(length=100), nullable=False),
        sa.Column('subject', sa.String(length=500), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=True),
        sa.Column('context', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'),
                  nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('worker', sa.String(length=100), nullable=True),
        sa.Column('lease_until', UTCDateTime(timezone=True), nullable=True),
        sa.Column('handed_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('sent_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('provider_message_id', sa.String(length=200), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'],
                                name=op.f('fk_outgoing_mail_subscriber_id_subscribers'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_outgoing_mail')),
    )
    op.create_index('ix_outgoing_mail_status_due', 'outgoing_mail',
                    ['status', 'next_attempt_at'])
    op.create_index(op.f('ix_outgoing_mail_subscriber_id'), 'outgoing_mail', ['subscriber_id'])


def downgrade() -> None:
    op.drop_index(op.f('ix_outgoing_mail_subscriber_id'), table_name='outgoing_mail')
    op.drop_index('ix_outgoing_mail_status_due', table_name='outgoing_mail')
    op.drop_table('outgoing_mail')
