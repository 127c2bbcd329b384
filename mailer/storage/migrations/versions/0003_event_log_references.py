"""the event log's references to deliveries, campaigns and subscribers without foreign keys

PostgreSQL checks every foreign key of every inserted row (and share-locks the referenced
row): a third of storing a webhook post of 1,000 events. The references stay, indexed as
before; see ``mailer.tracking.models.DeliveryEventRow`` for why they cannot dangle.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_REFERENCES = (
    ('fk_delivery_events_campaign_id_campaigns', 'campaign_id', 'campaigns'),
    ('fk_delivery_events_delivery_id_deliveries', 'delivery_id', 'deliveries'),
    ('fk_delivery_events_subscriber_id_subscribers', 'subscriber_id', 'subscribers'),
)


def upgrade() -> None:
    with op.batch_alter_table('delivery_events') as batch_op:
        for name, _column, _table in _REFERENCES:
            batch_op.drop_constraint(name, type_='foreignkey')


def downgrade() -> None:
    conn = op.get_bind()
    for _name, column, table in _REFERENCES:  # references that dangle cannot be restored
        conn.execute(sa.text(
            f"UPDATE delivery_events SET {column} = NULL WHERE {column} IS NOT NULL AND "
            f"{column} NOT IN (SELECT id FROM {table})"))
    with op.batch_alter_table('delivery_events') as batch_op:
        for name, column, table in _REFERENCES:
            batch_op.create_foreign_key(name, table, [column], ['id'], ondelete='SET NULL')
