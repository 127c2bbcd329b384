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

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Integer, and_, any_, bindparam, case, exists, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign, Delivery
from mailer.campaigns.models import CampaignStatus as CS
from mailer.campaigns.models import DeliveryStatus as DS
from mailer.storage.base import utcnow
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
    them back by batch id
    (with the subscriber's name for personalization), and the skip UPDATE touches only the
    unsendable rows below the batch.
    """
    batch_id = uuid.uuid4().hex
    now = utcnow()
    d = TABLE.alias("d")  # the subquery's own range variable, never correlated away
    picked = (
        select(d.c.id).select_from(_with_subscribers(d))
        .where(d.c.campaign_id == campaign_id, d.c.status == DS.PENDING, _sendable(),
               # Read with every claim: pause and cancel take effect within one batch.
               _campaign_status(campaign_id) == CS.SENDING)
        .order_by(d.c.id).limit(size)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Lock first, then update exactly those rows: PostgreSQL may re-run an IN (… LIMIT)
        # subquery inside an UPDATE, so the LIMIT would not bound the claim.
        ids = session.scalars(picked.with_for_update(of=d, skip_locked=True)).all()
        target = C.id == any_(bindparam("claimed", ids, type_=ARRAY(Integer)))
    else:  # one statement under SQLite's single write lock
        target = C.id.in_(picked.scalar_subquery())
    session.execute(
        update(TABLE)
        .where(target, C.status == DS.PENDING)
        .values(status=DS.SENDING, batch_id=batch_id, worker=worker, attempts=C.attempts + 1,
                claimed_at=now, updated_at=now,
                lease_until=now + timedelta(seconds=lease_seconds))
    )
    rows = [tuple(r) for r in session.execute(
        select(C.id, C.email, C.subscriber_id, Subscriber.name)
        .select_from(_with_subscribers(TABLE))
        .where(C.batch_id == batch_id).order_by(C.id)
    ).all()]
    skipped = _skip_unsendable(session, campaign_id, below=rows[-1][0] + 1 if rows else None)
    if not rows and not skipped:
        return None
    return Claim(batch_id, campaign_id, rows, skipped)


def _with_subscribers(deliveries):
    return deliveries.outerjoin(Subscriber.__table__,
                                Subscriber.id == deliveries.c.subscriber_id)


def _sendable():
    """The subscriber still exists, is active and its address is not suppressed."""
    return and_(Subscriber.status == ACTIVE, not_suppressed())


def _campaign_status(campaign_id: int):
    return select(Campaign.status).where(Campaign.id == campaign_id).scalar_subquery()


def _skip_unsendable(session: Session, campaign_id: int, below: int | None) -> int:
    """Mark pending rows whose subscriber can no longer be mailed as ``skipped`` (those below
    ``below``, or all of them when no sendable row is left), with the reason."""
    d = TABLE.alias("d")
    unsendable = (
        select(d.c.id).select_from(_with_subscribers(d))
        .where(d.c.campaign_id == campaign_id, d.c.status == DS.PENDING, ~_sendable(),
               _campaign_status(campaign_id) == CS.SENDING)
    )
    if below is not None:
        unsendable = unsendable.where(d.c.id < below)
    reason = case(
        (~exists().where(Subscriber.id == C.subscriber_id),
         "skipped: the subscriber was erased after the audience was drawn"),
        (exists().where(Subscriber.id == C.subscriber_id, Subscriber.status != ACTIVE),
         "skipped: the subscriber is " + select(Subscriber.status)
         .where(Subscriber.id == C.subscriber_id).scalar_subquery()
         + " since the audience was drawn"),
        else_="skipped: the address was suppressed after the audience was drawn",
    )
    result = session.execute(
        update(TABLE)
        .where(C.id.in_(unsendable.scalar_subquery()), C.status == DS.PENDING)
        .values(status=DS.SKIPPED, last_error=reason, updated_at=utcnow())
    )
    return result.rowcount or 0


def record_batch_accepted(session: Session, batch_id: str, message_id: str | None,
                          now: datetime | None = None) -> None:
    """Every row of the batch was accepted under one provider message id (the fast path)."""
    now = now or utcnow()
    session.execute(
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
    stmt = update(TABLE).where(C.batch_id == batch_id, C.status == DS.SENDING)
    if ids is not None:
        if not ids:
            return
        stmt = stmt.where(C.id.in_(ids))
    session.execute(stmt.values(status=DS.PENDING, batch_id=None, worker=None,
                                lease_until=None, last_error=reason, updated_at=utcnow()))


def mark_in_doubt(session: Session, batch_id: str, ids: list[int] | None, reason: str) -> None:
    """Rows that MAY have been handed off: recovery decides (evidence, grace, policy)."""
    stmt = update(TABLE).where(C.batch_id == batch_id, C.status == DS.SENDING)
    if ids is not None:
        if not ids:
            return
        stmt = stmt.where(C.id.in_(ids))
    session.execute(stmt.values(status=DS.IN_DOUBT, lease_until=None, last_error=reason,
                                updated_at=utcnow()))


def extend_leases(session: Session, batch_ids: list[str], lease_seconds: float) -> None:
    """Keep batches still in flight (slow API, long 429 waits) from looking abandoned."""
    if batch_ids:
        session.execute(
            update(TABLE).where(C.batch_id.in_(batch_ids), C.status == DS.SENDING)
            .values(lease_until=utcnow() + timedelta(seconds=lease_seconds))
        )
