"""On PostgreSQL a claim reads only its own window of rows, however far the campaign is.

A claim takes the next pending rows in id order and skips the unmailable ones among them,
so a window of nothing but unmailable rows is skipped (not mistaken for the end).

The plans are read with EXPLAIN from the statements the engine itself executes
(``claims._statements``), on a campaign of 20,000 rows whose first 19,000 are settled and
whose statistics are fresh: the shape in which the planner used to walk the primary key past
every settled row (or read and sort every pending one) for each batch.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text, update

from mailer.delivery import claims
from mailer.delivery.engine import start_campaign
from mailer.delivery.records import Delivery
from mailer.delivery.records import DeliveryStatus as DS
from mailer.storage.base import utcnow
from subscribers.models import UNSUBSCRIBED
from tests.conftest import POSTGRES_URL
from tests.support.campaigns import add_subscribers, approved_campaign, set_subscriber_status

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="MAILER_TEST_POSTGRES_URL not set")

ROWS, SETTLED, BATCH = 20_000, 19_000, 100


@pytest.fixture
def late_campaign(db, settings) -> tuple[int, list[int]]:
    """A sending campaign of ROWS deliveries, the first SETTLED of them accepted, analyzed;
    (its id, the ids of the next batch)."""
    add_subscribers(db, ROWS)
    campaign_id = approved_campaign(db)
    assert start_campaign(db, settings, campaign_id) == ROWS
    table = Delivery.__table__
    with db.session() as session:
        first = session.scalar(text("SELECT min(id) FROM deliveries"))
        session.execute(update(table).where(table.c.id < first + SETTLED)
                        .values(status=DS.ACCEPTED, sent_at=utcnow()))
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE deliveries, subscribers, suppressions, campaigns"))
    with db.session() as session:
        pending = session.scalars(text(
            "SELECT id FROM deliveries WHERE status = 'pending' ORDER BY id LIMIT :n"),
            {"n": BATCH}).all()
    return campaign_id, list(pending)


def _plan(db, statement, values: dict) -> list[dict]:
    """Every node of the plan PostgreSQL makes for ``statement`` with ``values``."""
    with db.engine.connect() as conn:
        compiled = statement.compile(dialect=conn.dialect)
        params = compiled.construct_params(values)
        document = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", params).scalar()
    nodes, todo = [], [document[0]["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(node.get("Plans", []))
    return nodes


def _values(late_campaign: tuple[int, list[int]]) -> dict:
    campaign_id, pending = late_campaign
    now = utcnow()
    return {"b_campaign": campaign_id, "b_size": BATCH, "b_batch": "plan", "b_worker": "plan",
            "b_now": now, "b_lease": now + timedelta(seconds=60), "b_after": 0,
            "b_claimed": pending[:-10],
            "b_skipped": pending[-10:]}


def _scans_of_deliveries(nodes: list[dict]) -> list[tuple[str, str | None]]:
    return [(n["Node Type"], n.get("Index Name")) for n in nodes
            if n.get("Relation Name") == "deliveries" and "Scan" in n["Node Type"]]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_lock_reads_the_next_pending_rows_from_the_partial_index(db, late_campaign):
    nodes = _plan(db, claims._statements("postgresql").lock, _values(late_campaign))
    scans = _scans_of_deliveries(nodes)
    assert scans and all(index == "ix_deliveries_pending" for _, index in scans), scans
    assert {kind for kind, _ in scans} <= {"Index Scan", "Index Only Scan"}, scans
    # In id order from the index: nothing is sorted, so the scan stops after one batch.
    assert not [n for n in nodes if n["Node Type"] in ("Sort", "Incremental Sort")]
    assert any(n["Node Type"] == "Limit" for n in nodes)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("name", ["claim", "skip"])
def test_the_claim_and_skip_updates_go_by_primary_key(db, late_campaign, name):
    statement = getattr(claims._statements("postgresql"), name)
    scans = _scans_of_deliveries(_plan(db, statement, _values(late_campaign)))
    assert scans and {index for _, index in scans} == {"pk_deliveries"}, scans


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_window_of_unmailable_rows_is_skipped_and_the_next_claim_goes_on(db, settings):
    add_subscribers(db, 30)
    campaign_id = approved_campaign(db)
    start_campaign(db, settings, campaign_id)
    for i in range(10):  # the first ten drawn unsubscribe before the first claim
        set_subscriber_status(db, f"person{i}@example.org", UNSUBSCRIBED)
    with db.session() as session:
        first = claims.claim_batch(session, campaign_id, size=10, worker="w", lease_seconds=60)
        second = claims.claim_batch(session, campaign_id, size=10, worker="w", lease_seconds=60)
    assert first is not None and first.rows == [] and first.skipped == 10
    assert [row[1] for row in second.rows] == [f"person{i}@example.org" for i in range(10, 20)]
    assert second.skipped == 0


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_lock_starts_above_the_previous_claim(db, late_campaign):
    """The entries of rows claimed before stay in the partial index until VACUUM: a lock
    given the previous claim's last id seeks past them instead of stepping over them."""
    values = _values(late_campaign) | {"b_after": late_campaign[1][0]}
    nodes = _plan(db, claims._statements("postgresql").lock, values)
    conds = [n.get("Index Cond", "") for n in nodes
             if n.get("Index Name") == "ix_deliveries_pending"]
    assert conds and all("id >" in cond for cond in conds), conds


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_rows_released_below_the_start_are_claimed_when_none_are_left_above(db, settings):
    add_subscribers(db, 30)
    campaign_id = approved_campaign(db)
    start_campaign(db, settings, campaign_id)
    with db.session() as session:
        first = claims.claim_batch(session, campaign_id, size=10, worker="w", lease_seconds=60)
        claims.release(session, first.batch_id, None, "not sent: test")
        second = claims.claim_batch(session, campaign_id, size=10, worker="w", lease_seconds=60,
                                    after=first.through)
        third = claims.claim_batch(session, campaign_id, size=20, worker="w", lease_seconds=60,
                                   after=second.through)
        fourth = claims.claim_batch(session, campaign_id, size=20, worker="w", lease_seconds=60,
                                    after=third.through)
        last = claims.claim_batch(session, campaign_id, size=20, worker="w", lease_seconds=60,
                                  after=fourth.through)
    assert first.through == first.ids[-1] and second.ids[0] > first.through
    assert len(third.ids) == 10 and third.ids[0] > second.through
    assert fourth.ids == first.ids  # released below the start: claimed once none are above
    assert last is None
