"""The batch index holds only rows in flight and the message id index only rows that have one
(migration 0018), and the statements that need them still find them.

A batch's record goes by primary key, with the batch id as a guard: rows of another batch are
never written, a row a provider event moved on keeps its status but gets its message id, and a
journal replay (``only_open``) leaves such a row wholly untouched.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, text, update

from mailer.delivery import claims
from mailer.delivery.engine import start_campaign
from mailer.delivery.records import Delivery
from mailer.delivery.records import DeliveryStatus as DS
from mailer.tracking import ingest
from tests.support.campaigns import add_subscribers, approved_campaign

C = Delivery.__table__.c


@pytest.fixture
def claimed(db, settings) -> tuple[int, claims.Claim]:
    """A sending campaign of 6 rows, the first 4 claimed as one batch."""
    add_subscribers(db, 6)
    campaign_id = approved_campaign(db)
    start_campaign(db, settings, campaign_id)
    with db.session() as session:
        claim = claims.claim_batch(session, campaign_id, size=4, worker="w", lease_seconds=60)
    assert claim is not None and len(claim.rows) == 4
    return campaign_id, claim


def _rows(db, campaign_id: int) -> list[tuple]:
    with db.session() as session:
        return [tuple(r) for r in session.execute(
            select(C.id, C.status, C.batch_id, C.provider_message_id, C.sent_at.is_not(None))
            .where(C.campaign_id == campaign_id).order_by(C.id))]


def test_the_record_writes_the_claims_rows_by_id_and_no_other(db, claimed):
    campaign_id, claim = claimed
    with db.session() as session:
        # A row of the batch a provider event already moved on, and one of another batch.
        session.execute(update(Delivery.__table__).where(C.id == claim.ids[0])
                        .values(status=DS.DELIVERED))
        session.execute(update(Delivery.__table__).where(C.id == claim.ids[3])
                        .values(batch_id="another"))
        claims.record_batch_accepted(session, claim.batch_id, claim.ids, "msg-1")
    rows = _rows(db, campaign_id)
    assert rows[0][1:] == (DS.DELIVERED, claim.batch_id, "msg-1", True)
    assert [r[1:] for r in rows[1:3]] == [(DS.ACCEPTED, claim.batch_id, "msg-1", True)] * 2
    assert rows[3][1:] == (DS.SENDING, "another", None, False)
    assert [r[1] for r in rows[4:]] == [DS.PENDING, DS.PENDING]


def test_a_journal_replay_leaves_rows_that_moved_on_untouched(db, claimed):
    campaign_id, claim = claimed
    with db.session() as session:
        session.execute(update(Delivery.__table__).where(C.id == claim.ids[0])
                        .values(status=DS.DELIVERED))
        claims.record_batch_accepted(session, claim.batch_id, claim.ids, "msg-2",
                                     only_open=True)
    rows = _rows(db, campaign_id)
    assert rows[0][1:] == (DS.DELIVERED, claim.batch_id, None, False)
    assert [r[1:] for r in rows[1:4]] == [(DS.ACCEPTED, claim.batch_id, "msg-2", True)] * 3


def test_an_empty_batch_records_nothing(db, claimed):
    campaign_id, claim = claimed
    with db.session() as session:
        claims.record_batch_accepted(session, claim.batch_id, [], "msg-3")
    assert {r[1] for r in _rows(db, campaign_id)[:4]} == {DS.SENDING}


def test_the_indexes_hold_only_rows_in_flight_and_rows_with_a_message_id(db, backend):
    with db.engine.connect() as conn:
        if backend == "sqlite":
            found = dict(conn.execute(text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name = 'deliveries'")).all())
        else:
            found = dict(conn.execute(text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'deliveries'"))
                .all())
    assert "'sending'" in found["ix_deliveries_batch"].split("WHERE", 1)[1]
    assert "is not null" in found["ix_deliveries_provider_message_id"].split("WHERE", 1)[1].lower()


def _sqlite_plan(db, sql: str, params) -> str:
    with db.engine.connect() as conn:
        return " ".join(str(r[-1]) for r in conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {sql}", params).all())


def _postgres_plan(db, sql: str, params) -> str:
    with db.engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")  # tiny tables: ask what CAN serve
        return " ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}", params).all())


def test_lookups_by_batch_and_by_message_id_use_the_partial_indexes(db, backend, claimed):
    """The condition each partial index needs is stated literally by its users: the claim's
    read-back (SQLite), releasing or marking a batch (both), webhook matching (both)."""
    by_message = (ingest._refs_sql_sqlite("provider_message_id", 1) if backend == "sqlite"
                  else ingest._refs_sql_postgres("provider_message_id"))
    release = update(Delivery.__table__).where(C.batch_id == "b", claims._SENDING) \
        .values(status=DS.PENDING)
    with db.engine.connect() as conn:
        release_sql = str(release.compile(dialect=conn.dialect,
                                          compile_kwargs={"literal_binds": True}))
    if backend == "sqlite":
        read_back = claims._statements("sqlite").read_back.compile(dialect=db.engine.dialect)
        assert "ix_deliveries_batch" in _sqlite_plan(db, str(read_back), ("b",))
        assert "ix_deliveries_batch" in _sqlite_plan(db, release_sql, ())
        assert "ix_deliveries_provider_message_id" in _sqlite_plan(db, by_message, ("m",))
    else:
        assert "ix_deliveries_batch" in _postgres_plan(db, release_sql, ())
        assert "ix_deliveries_provider_message_id" in _postgres_plan(db, by_message, (["m"],))
