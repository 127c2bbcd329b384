"""users.session_epoch: logging out ends the session on the server, not just in the browser

Dashboard sessions live in a signed cookie. Clearing it on log out left any copy of the
cookie working until it expired. Each session now carries the user's session epoch, and
logging out moves the epoch on, so every cookie issued before no longer opens the dashboard.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('session_epoch', sa.Integer(), nullable=False,
                                   server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('session_epoch')
