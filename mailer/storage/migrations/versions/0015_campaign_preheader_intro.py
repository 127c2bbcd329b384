"""campaigns.preheader and campaigns.intro: the inbox preview line and a short note above
the release, both optional (NULL: the preview line comes from the release, no note)

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.add_column(sa.Column('preheader', sa.String(length=150), nullable=True))
        batch.add_column(sa.Column('intro', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.drop_column('intro')
        batch.drop_column('preheader')
