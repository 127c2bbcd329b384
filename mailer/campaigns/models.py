"""Campaigns (one release or digest to one audience) and their per-recipient deliveries.

The ``deliveries`` row is the source of truth for "was this person sent this campaign": it is
written before and after every hand-off to a transport (see ``mailer.delivery``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mailer.storage.base import Base, JSONType, UTCDateTime, utcnow


class CampaignStatus:
    """The closed set of campaign states (transitions live in ``mailer.campaigns.lifecycle``)."""

    DRAFT = "draft"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"
    FAILED = "failed"
    MISSED = "missed"
    ALL = (DRAFT, APPROVED, SCHEDULED, SENDING, PAUSED, SENT, CANCELLED, FAILED, MISSED)


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


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="release")  # release | digest
    release_id: Mapped[int | None] = mapped_column(
        ForeignKey("releases.id", ondelete="RESTRICT"), index=True
    )
    digest_id: Mapped[int | None] = mapped_column(ForeignKey("digests.id", ondelete="SET NULL"))
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="RESTRICT"))
    #: The audience query when no saved segment is used.
    query: Mapped[str | None] = mapped_column(Text)
    template: Mapped[str] = mapped_column(String(100), default="press_release")
    subject: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), default=CampaignStatus.DRAFT, index=True)
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(100))
    approved_by: Mapped[str | None] = mapped_column(String(100))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    blackout_override_by: Mapped[str | None] = mapped_column(String(100))
    blackout_override_reason: Mapped[str | None] = mapped_column(Text)
    #: Number of delivery rows drawn when sending started (None before).
    recipients: Mapped[int | None] = mapped_column(Integer)
    #: A digest campaign's releases, in the order the email lists them (None otherwise).
    digest_release_ids: Mapped[list | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CampaignLog(Base):
    """Every state change of a campaign: who, when, why."""

    __tablename__ = "campaign_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    by: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """One campaign to one subscriber. Unique per (campaign, subscriber): nobody is drawn twice."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("campaign_id", "subscriber_id"),
        Index("ix_deliveries_campaign_status", "campaign_id", "status"),
        Index("ix_deliveries_batch", "batch_id"),
        # Room on each page for the row's later versions (migration 0005 says why).
        {"postgresql_with": {"fillfactor": 85}},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    #: The address as it was when drawn (the send must not depend on later edits).
    email: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    batch_id: Mapped[str | None] = mapped_column(String(40))
    worker: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the row was last claimed for a hand-off: the in-doubt grace counts from here.
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_message_id: Mapped[str | None] = mapped_column(String(200), index=True)
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
