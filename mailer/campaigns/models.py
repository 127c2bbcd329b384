"""Campaigns (one release or digest to one audience) and their log of state changes.

The per-recipient ``deliveries`` rows belong to ``mailer.delivery.records``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

# ``campaigns.digest_id`` references ``digests``: registering that table wherever campaigns
# are loaded lets a flush resolve the reference in any process (a send helper imports no
# scheduling code, and its last commit failed on it).
from mailer.scheduling import models as _digests  # noqa: F401
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
    #: The hidden preview line an inbox shows after the subject (None: from the release).
    preheader: Mapped[str | None] = mapped_column(String(150))
    #: A short plain-text note printed above the release (paragraphs kept; None: none).
    intro: Mapped[str | None] = mapped_column(Text)
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
