"""Leasing batches of deliveries and recording what became of them.

A claim moves up to ``size`` pending rows of one campaign to ``sending`` with a fresh batch
id, the worker's name, ``attempts + 1`` and a lease, and commits that BEFORE anything is
handed to a transport. On PostgreSQL the candidate rows are read ``FOR UPDATE SKIP LOCKED``,
so any number of workers on any number of machines share one campaign without waiting for or
duplicating each other. SQLite has one writer at a time; there the UPDATE repeats the
``status = 'pending'`` condition and RETURNING tells which rows this claim really got, so two
processes can never both hold a row.

Rows whose subscriber is no longer active (unsubscribed, bounced, complained, erased) or whose
address was suppressed since the audience was drawn are marked ``skipped`` in the same
transaction, so an unsubscribe takes effect from the very next batch.

All statements are Core statements over id lists: no ORM object per recipient.
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    and_,
    any_,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as CS
from mailer.delivery.records import Delivery
from mailer.delivery.records import DeliveryStatus as DS
from mailer.storage.base import UTCDateTime, utcnow
from subscribers.models import ACTIVE, Subscriber
from subscribers.segments import not_suppressed

TABLE = Delivery.__table__
C = TABLE.c
#: Statuses a hand-off result may overwrite; anything else was moved on by provider events.
_OPEN = (DS.SENDING, DS.IN_DOUBT)


@dataclass(slots=True)
class Claim:
    batch_id: str
    campaign_id: int
    #: (delivery id, email, subscriber id, name) in id order.
    rows: list[tuple[int, str, int | None, str | None]]
    skipped: int = 0

    @property
    def ids(self) -> list[int]:
        return [row[0] for row in self.rows]


def campaign_status(session: Session, campaign_id: int) -> str | None:
    return session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))


def claim_batch(session: Session, campaign_id: int, *, size: int, worker: str,
                lease_seconds: float) -> Claim | None:
    """Lease the next batch of ``campaign_id``; None when the campaign is not ``sending`` or
    no sendable pending row is left (or all remaining ones are leased by other workers right
    now). Rows passed over because their subscriber can no longer be mailed are marked
    ``skipped`` in the same transaction. The caller commits.

    No per-row parameter lists: the UPDATE picks its rows with a subquery (on PostgreSQL the
    ids are first locked ``FOR UPDATE SKIP LOCKED`` and passed as one array), the SELECT reads
    them back by batch id with the subscriber's name, and the skip UPDATE touches only the
    unsendable rows below the batch. The statements are built once per process.
    """
    sql = _statements(session.get_bind().dialect.name)
    now = utcnow()
    params = {"b_campaign": campaign_id, "b_size": size, "b_batch": uuid.uuid4().hex,
              "b_worker": worker, "b_now": now,
              "b_lease": now + timedelta(seconds=lease_seconds)}
    conn = session.connection()  # Core all the way: no ORM result processing per row
    if sql.lock is not None:
        params["b_claimed"] = conn.execute(sql.lock, params).scalars().all()
    conn.execute(sql.claim, params)
    if sql.lock is None:  # SQLite
        # One row holding the batch as JSON: the sqlite3 module gives up the GIL for every
        # row it steps through, and with the pool threads busy each row then waited up to a
        # switch interval to get it back (1,000 rows: ~30 ms per claim, measured).
        packed = conn.execute(sql.read_back, params).scalar()
        rows = sorted(tuple(r) for r in json.loads(packed)) if packed else []
    else:
        rows = [tuple(r) for r in conn.execute(sql.read_back, params)]
    params["b_below"] = rows[-1][0] + 1 if rows else 2**31 - 1  # no sendable row: all
    skipped = conn.execute(sql.skip, params).rowcount or 0
    if not rows and not skipped:
        return None
    return Claim(params["b_batch"], campaign_id, rows, skipped)


@dataclass(frozen=True)
class _Statements:
    lock: Any  # PostgreSQL only: SELECT … FOR UPDATE SKIP LOCKED
    claim: Any
    read_back: Any
    skip: Any


@functools.cache
def _statements(dialect: str) -> _Statements:
    campaign = bindparam("b_campaign", type_=Integer)
    now = bindparam("b_now", type_=UTCDateTime())
    sending = select(Campaign.status).where(Campaign.id == campaign).scalar_subquery() \
        == CS.SENDING  # read with every claim: pause and cancel act within one batch
    d = TABLE.alias("d")  # the subquery's own range variable, never correlated away
    pending = and_(d.c.campaign_id == campaign, d.c.status == DS.PENDING, sending)
    picked = (select(d.c.id).select_from(_with_subscribers(d))
              .where(pending, _sendable(now)).order_by(d.c.id)
              .limit(bindparam("b_size", type_=Integer)))
    lock = None
    if dialect == "postgresql":
        # Lock first, then update exactly those rows: PostgreSQL may re-run an IN (… LIMIT)
        # subquery inside an UPDATE, so the LIMIT would not bound the claim.
        lock = picked.with_for_update(of=d, skip_locked=True)
        target = C.id == any_(bindparam("b_claimed", type_=ARRAY(Integer)))
    else:  # one statement under SQLite's single write lock
        target = C.id.in_(picked.scalar_subquery())
    claim = update(TABLE).where(target, C.status == DS.PENDING).values(
        status=DS.SENDING, batch_id=bindparam("b_batch", type_=String), attempts=C.attempts + 1,
        worker=bindparam("b_worker", type_=String), claimed_at=now, updated_at=now,
        lease_until=bindparam("b_lease", type_=UTCDateTime()))
    read_back = (select(C.id, C.email, C.subscriber_id, Subscriber.__table__.c.name)
                 .select_from(_with_subscribers(TABLE))
                 .where(C.batch_id == bindparam("b_batch", type_=String)).order_by(C.id))
    if dialect != "postgresql":  # SQLite: the whole batch in one row (see claim_batch)
        batch = read_back.subquery()
        read_back = select(func.json_group_array(func.json_array(
            batch.c.id, batch.c.email, batch.c.subscriber_id, batch.c.name)))
    unsendable = (select(d.c.id).select_from(_with_subscribers(d))
                  .where(pending, _unsendable(now),
                         d.c.id < bindparam("b_below", type_=Integer)))
    skip = (update(TABLE).where(C.id.in_(unsendable.scalar_subquery()), C.status == DS.PENDING)
            .values(status=DS.SKIPPED, last_error=_skip_reason(now), updated_at=now))
    return _Statements(lock, claim, read_back, skip)


def _with_subscribers(deliveries):
    return deliveries.outerjoin(Subscriber.__table__,
                                Subscriber.id == deliveries.c.subscriber_id)


def _sendable(now):
    """The subscriber still exists, is active, has not paused their emails and its address is
    not suppressed (``now`` is a bound parameter: the statements are built once)."""
    return and_(Subscriber.status == ACTIVE, _not_paused(now), not_suppressed())


def _unsendable(now):
    """The exact complement of ``_sendable`` (NULL-safe: an erased subscriber is unsendable)."""
    return or_(Subscriber.id.is_(None), Subscriber.status != ACTIVE, ~_not_paused(now),
               ~not_suppressed())


def _not_paused(now):
    return or_(Subscriber.paused_until.is_(None), Subscriber.paused_until <= now)


def _skip_reason(now):
    """Why a pending row is skipped, worked out in SQL for each row."""
    status = select(Subscriber.status).where(Subscriber.id == C.subscriber_id).scalar_subquery()
    return case(
        (~exists().where(Subscriber.id == C.subscriber_id),
         "skipped: the subscriber was erased after the audience was drawn"),
        (status != ACTIVE, "skipped: the subscriber is " + status
         + " since the audience was drawn"),
        (exists().where(Subscriber.id == C.subscriber_id, ~_not_paused(now)),
         "skipped: the subscriber paused their emails"),
        else_="skipped: the address was suppressed after the audience was drawn",
    )


def record_batch_accepted(session: Session, batch_id: str, message_id: str | None,
                          now: datetime | None = None) -> None:
    """Every row of the batch was accepted under one provider message id (the fast path)."""
    now = now or utcnow()
    session.connection().execute(
        update(TABLE).where(C.batch_id == batch_id)
        .values(status=case((C.status.in_(_OPEN), DS.ACCEPTED), else_=C.status),
                provider_message_id=message_id, sent_at=now, lease_until=None,
                last_error=None, updated_at=now)
    )


def record_results(session: Session, batch_id: str,
                   results: list[tuple[int, bool, str | None, str | None]]) -> None:
    """Per-row outcomes: (delivery id, accepted, provider message id, error)."""
    if not results:
        return
    now = utcnow()
    params = [{"b_id": i, "b_status": DS.ACCEPTED if ok else DS.FAILED, "b_mid": mid,
               "b_error": None if ok else (err or "refused"), "b_sent": now if ok else None}
              for i, ok, mid, err in results]
    session.execute(
        update(TABLE)
        .where(C.id == bindparam("b_id"), C.batch_id == batch_id)
        # executemany cannot expand IN lists, so spell the open states out.
        .values(status=case((or_(*(C.status == s for s in _OPEN)), bindparam("b_status")),
                            else_=C.status),
                provider_message_id=bindparam("b_mid"), last_error=bindparam("b_error"),
                sent_at=bindparam("b_sent"), lease_until=None, updated_at=now),
        params,
    )


def release(session: Session, batch_id: str, ids: list[int] | None, reason: str) -> None:
    """Rows certainly NOT handed off go back to ``pending`` (all of the batch when ids is None)."""
    _update_sending(session, batch_id, ids, status=DS.PENDING, batch_id=None, worker=None,
                    lease_until=None, last_error=reason)


def mark_in_doubt(session: Session, batch_id: str, ids: list[int] | None, reason: str) -> None:
    """Rows that MAY have been handed off: recovery decides (evidence, grace, policy)."""
    _update_sending(session, batch_id, ids, status=DS.IN_DOUBT, lease_until=None,
                    last_error=reason)


def _update_sending(session: Session, batch: str, ids: list[int] | None, **values: Any) -> None:
    """Update the rows of ``batch`` that are still ``sending`` (only ``ids`` unless None)."""
    stmt = update(TABLE).where(C.batch_id == batch, C.status == DS.SENDING)
    if ids is not None:
        if not ids:
            return
        stmt = stmt.where(C.id.in_(ids))
    session.execute(stmt.values(updated_at=utcnow(), **values))


def extend_leases(session: Session, batch_ids: list[str], lease_seconds: float) -> None:
    """Keep batches still in flight (slow API, long 429 waits) from looking abandoned."""
    if batch_ids:
        session.execute(
            update(TABLE).where(C.batch_id.in_(batch_ids), C.status == DS.SENDING)
            .values(lease_until=utcnow() + timedelta(seconds=lease_seconds))
        )
