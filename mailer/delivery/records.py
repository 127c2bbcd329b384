"""The ``deliveries`` table, its closed set of statuses, the named groups of statuses and the
grouped counts. This module owns them: everyone else asks it.

A ``deliveries`` row is the source of truth for "was this person sent this campaign": it is
written before and after every hand-off to a transport (see ``mailer.delivery.sender``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from mailer.storage.base import Base, UTCDateTime, utcnow


class DeliveryStatus:
    """The closed set of per-recipient states.

    pending -> sending -> accepted | failed | in_doubt; accepted -> delivered | bounced |
    dropped (from provider events); pending -> skipped when the person was suppressed after
    the audience was drawn.
    """

    PENDING = "pending"
    SENDING = "sending"
    ACCEPTED = "accepted"
    IN_DOUBT = "in_doubt"
    FAILED = "failed"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    DROPPED = "dropped"
    SKIPPED = "skipped"
    ALL = (PENDING, SENDING, ACCEPTED, IN_DOUBT, FAILED, DELIVERED, DEFERRED, BOUNCED, DROPPED,
           SKIPPED)


#: The provider took it (later events refine it): what reports call "sent".
HANDED_OFF = (DeliveryStatus.ACCEPTED, DeliveryStatus.DEFERRED, DeliveryStatus.DELIVERED,
              DeliveryStatus.BOUNCED, DeliveryStatus.DROPPED)
#: Not yet settled: waiting for a sender, or with one right now (progress bars count the rest).
UNSETTLED = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)


#: The conditions of the partial indexes below (written out: a partial index serves only a
#: query that states its condition with the same literal).
_SENDING_ROWS = text("status = 'sending'")
_HANDED_OFF_ROWS = text("provider_message_id IS NOT NULL")


class Delivery(Base):
    """One campaign to one subscriber. Unique per (campaign, subscriber): nobody is drawn twice.

    ``campaign_id`` and ``subscriber_id`` are references without foreign key constraints, on
    purpose (migration 0020): drawing an audience inserts a row per recipient, and PostgreSQL
    checks (and share-locks the row of) every constraint for every row, more than half of
    the draw. Rows are inserted only by ``mailer.delivery.audience.draw_audience``, from the
    campaign it holds locked and the subscribers it reads in the same statement; campaigns
    are never deleted; erasure (``mailer.tracking.erasure.forget``) clears ``subscriber_id``
    itself, and a reference to a subscriber who is gone reads as one with none (the claim
    outer-joins subscribers and skips the row).
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        # Nobody is drawn twice; subscriber first, so the same index serves a person's
        # history and erasure (migration 0020 says why there is no separate subscriber_id
        # index).
        UniqueConstraint("subscriber_id", "campaign_id"),
        Index("ix_deliveries_campaign_status", "campaign_id", "status"),
        # Only the rows in flight: every lookup by batch id is of those (claims.py), and a
        # row leaves the index when its outcome is recorded, so on PostgreSQL the record of
        # a batch adds no entry here (migration 0018 says why).
        Index("ix_deliveries_batch", "batch_id", postgresql_where=_SENDING_ROWS,
              sqlite_where=_SENDING_ROWS),
        # Webhook events are matched by the message id of their request; only rows handed
        # off have one, so a claim adds no entry here either (migration 0018).
        Index("ix_deliveries_provider_message_id", "provider_message_id",
              postgresql_where=_HANDED_OFF_ROWS, sqlite_where=_HANDED_OFF_ROWS),
        # "The next pending rows of this campaign in id order", read by every claim: only
        # pending rows are in it, so a claim reads its batch and not the settled rows before
        # it (migration 0006 says why).
        Index("ix_deliveries_pending", "campaign_id", "id",
              postgresql_where=text("status = 'pending'"),
              sqlite_where=text("status = 'pending'")),
        # Room on each page for the row's later versions (migration 0005 says why).
        {"postgresql_with": {"fillfactor": 85}},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int]
    subscriber_id: Mapped[int | None]
    #: The address as it was when drawn (the send must not depend on later edits).
    email: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    batch_id: Mapped[str | None] = mapped_column(String(40))
    worker: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the row was last claimed for a hand-off: the in-doubt grace counts from here.
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    complained_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


#: Engagement counts: rows that have the time set.
ENGAGEMENT = {"opened": Delivery.opened_at, "clicked": Delivery.clicked_at,
              "complained": Delivery.complained_at, "unsubscribed": Delivery.unsubscribed_at}


def counts_by_campaign(session: Session, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """campaign id -> {status: rows} (only statuses that occur), in one grouped query."""
    counts: dict[int, dict[str, int]] = {cid: {} for cid in campaign_ids}
    if not campaign_ids:
        return counts
    rows = session.execute(
        select(Delivery.campaign_id, Delivery.status, func.count())
        .where(Delivery.campaign_id.in_(campaign_ids))
        .group_by(Delivery.campaign_id, Delivery.status))
    for campaign_id, status, number in rows:
        counts[campaign_id][status] = number
    return counts


def status_counts(session: Session, campaign_id: int) -> dict[str, int]:
    """Every status (zeros included), ``recipients`` (their sum) and the engagement counts
    ``opened, clicked, complained, unsubscribed`` (rows with that time set)."""
    by_status = counts_by_campaign(session, [campaign_id])[campaign_id]
    counts = {status: by_status.get(status, 0) for status in DeliveryStatus.ALL}
    engagement = session.execute(
        select(*(func.count(column) for column in ENGAGEMENT.values()))
        .where(Delivery.campaign_id == campaign_id)).one()
    result = {"recipients": sum(by_status.values()), **counts}
    result.update(zip(ENGAGEMENT, (int(n or 0) for n in engagement), strict=True))
    return result


def grouped(counts: dict[str, int]) -> dict[str, int]:
    """The named groups of a {status: rows} mapping."""
    return {"handed_off": sum(counts.get(s, 0) for s in HANDED_OFF),
            "unsettled": sum(counts.get(s, 0) for s in UNSETTLED)}
