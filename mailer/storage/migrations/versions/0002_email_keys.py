"""subscribers and suppressions matched on a 64-bit email key; covering topic index

The audience query used to anti-join ``subscribers.email_hash`` (64 hex characters, indexed)
with the suppression list. Subscribers now carry ``email_key`` (the hash's first 64 bits,
unindexed) and suppressions both their exact hash and that key (indexed): the random-order
hash index cost a million-row import a third of its time. ``subscriber_topics`` gets an index
on (topic_id, subscriber_id) in place of the one on topic_id alone, which covers counting a
topic's followers.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_BATCH = 5000


def _key(digest: str) -> int:
    # The same as subscribers.addresses.email_key, frozen here: a migration must not change
    # when the application's code does.
    return int.from_bytes(bytes.fromhex(digest[:16]), "big", signed=True)


def _fill_keys(table: str) -> None:
    """email_key from email_hash for every row, in batches of bound parameters."""
    conn = op.get_bind()
    last = 0
    select = sa.text(f"SELECT id, email_hash FROM {table} WHERE id > :last ORDER BY id "
                     f"LIMIT {_BATCH}")
    update = sa.text(f"UPDATE {table} SET email_key = :key WHERE id = :id")
    while rows := conn.execute(select, {"last": last}).all():
        conn.execute(update, [{"id": i, "key": _key(h)} for i, h in rows])
        last = rows[-1][0]


def upgrade() -> None:
    for table in ('subscribers', 'suppressions'):
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column('email_key', sa.BigInteger(), nullable=True))
        _fill_keys(table)
    with op.batch_alter_table('subscribers') as batch_op:
        batch_op.alter_column('email_key', existing_type=sa.BigInteger(), nullable=False)
        batch_op.drop_index('ix_subscribers_email_hash')
        batch_op.drop_column('email_hash')
    with op.batch_alter_table('suppressions') as batch_op:
        batch_op.alter_column('email_key', existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_index('ix_suppressions_email_key', ['email_key'], unique=False)
    with op.batch_alter_table('subscriber_topics') as batch_op:
        batch_op.drop_index('ix_subscriber_topics_topic_id')
        batch_op.create_index('ix_subscriber_topics_topic_id_subscriber_id',
                              ['topic_id', 'subscriber_id'], unique=False)


def downgrade() -> None:
    import hashlib

    conn = op.get_bind()
    with op.batch_alter_table('subscriber_topics') as batch_op:
        batch_op.drop_index('ix_subscriber_topics_topic_id_subscriber_id')
        batch_op.create_index('ix_subscriber_topics_topic_id', ['topic_id'], unique=False)
    with op.batch_alter_table('suppressions') as batch_op:
        batch_op.drop_index('ix_suppressions_email_key')
        batch_op.drop_column('email_key')
    with op.batch_alter_table('subscribers') as batch_op:
        batch_op.add_column(sa.Column('email_hash', sa.String(length=64), nullable=True))
    last = 0
    while rows := conn.execute(sa.text(
            f"SELECT id, email FROM subscribers WHERE id > :last ORDER BY id LIMIT {_BATCH}"),
            {"last": last}).all():
        conn.execute(sa.text("UPDATE subscribers SET email_hash = :h WHERE id = :id"),
                     [{"id": i, "h": hashlib.sha256(e.encode()).hexdigest()} for i, e in rows])
        last = rows[-1][0]
    with op.batch_alter_table('subscribers') as batch_op:
        batch_op.alter_column('email_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column('email_key')
        batch_op.create_index('ix_subscribers_email_hash', ['email_hash'], unique=False)
