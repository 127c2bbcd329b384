"""Migration 0020: the deliveries of a database at 0019 survive the new key on (subscriber_id,
campaign_id) unchanged (SQLite rebuilds the table), nobody can be drawn twice afterwards, and
with the foreign keys gone erasure still clears the person's id from the rows."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, inspect, select
from sqlalchemy.exc import IntegrityError

from mailer.campaigns.models import Campaign
from mailer.delivery.audience import draw_audience
from mailer.delivery.records import Delivery
from mailer.storage.base import utcnow
from mailer.storage.db import Database, current_revision, head_revision, upgrade
from mailer.tracking.erasure import forget
from subscribers.models import Subscriber
from tests.support.campaigns import add_subscribers, approved_campaign

C = Delivery.__table__.c


def _rows(db: Database) -> list[tuple]:
    with db.session() as session:
        return [tuple(r) for r in session.execute(
            select(C.id, C.campaign_id, C.subscriber_id, C.email, C.status).order_by(C.id))]


def _draw(db: Database, campaign_id: int) -> int:
    with db.session() as session:
        return draw_audience(session, session.get(Campaign, campaign_id))


@pytest.fixture
def drawn(empty_engine) -> tuple[Database, list[tuple]]:
    """A database at 0019 (before the new key) with two campaigns drawn for three
    subscribers, then upgraded."""
    upgrade(empty_engine, "0019")
    db = Database(empty_engine)
    add_subscribers(db, 3)
    for subject in ("First", "Second"):
        assert _draw(db, approved_campaign(db, subject=subject)) == 3
    before = _rows(db)
    assert upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    return db, before


def test_one_key_on_subscriber_then_campaign_and_no_separate_subscriber_index(drawn):
    db, before = drawn
    assert _rows(db) == before and len(before) == 6
    schema = inspect(db.engine)
    keys = [u["column_names"] for u in schema.get_unique_constraints("deliveries")]
    assert keys == [["subscriber_id", "campaign_id"]]
    assert ["subscriber_id"] not in [i["column_names"] for i in schema.get_indexes("deliveries")]


def test_nobody_is_drawn_twice_after_the_upgrade(drawn):
    db, before = drawn
    campaign_id, subscriber_id, email = before[0][1:4]
    assert _draw(db, campaign_id) == 3  # drawing again adds nobody
    with pytest.raises(IntegrityError), db.session() as session:
        session.execute(insert(Delivery.__table__).values(
            campaign_id=campaign_id, subscriber_id=subscriber_id, email=email,
            status="pending", attempts=0, created_at=utcnow()))
    assert _rows(db) == before


def test_no_foreign_key_is_left_and_erasure_clears_the_subscriber_id_itself(drawn):
    db, before = drawn
    assert inspect(db.engine).get_foreign_keys("deliveries") == []
    gone = before[0][2]
    with db.session() as session:
        forget(session, session.get(Subscriber, gone))
    after = _rows(db)
    assert [r[:2] for r in after] == [r[:2] for r in before]
    assert [r[2] for r in after] == [None if r[2] == gone else r[2] for r in before]
    assert [r[3].startswith("forgotten-") for r in after] == [r[2] == gone for r in before]


#: What finds a subscriber's deliveries: the draw's NOT EXISTS guard, a person's history, and
#: erasure (which clears the id itself: there is no foreign key to do it).
LOOKUPS = ("SELECT 1 FROM deliveries WHERE campaign_id = 1 AND subscriber_id = 2",
           "SELECT id FROM deliveries WHERE subscriber_id = 2 ORDER BY created_at, id",
           "UPDATE deliveries SET subscriber_id = NULL WHERE subscriber_id = 2")


def test_every_lookup_by_subscriber_uses_the_new_key(db, backend):
    sqlite = backend == "sqlite"
    key = "sqlite_autoindex_deliveries" if sqlite else "uq_deliveries_subscriber_id_campaign_id"
    with db.engine.connect() as conn:
        if not sqlite:
            conn.exec_driver_sql("SET enable_seqscan = off")  # tiny tables: what CAN serve
        for sql in LOOKUPS:
            rows = conn.exec_driver_sql(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + sql)
            plan = " ".join(str(r[-1] if sqlite else r[0]) for r in rows)
            assert key in plan, (sql, plan)
