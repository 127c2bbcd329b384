"""Recurring digests, who each digest campaign was planned for, and the scheduler's lease."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailer.storage.base import Base, UTCDateTime, utcnow


class Digest(Base):
    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    frequency: Mapped[str] = mapped_column(String(20))  # daily | weekly
    at: Mapped[str] = mapped_column(String(40))  # "Fri 16:00" or "07:00", office time zone
    query: Mapped[str | None] = mapped_column(Text)
    template: Mapped[str] = mapped_column(String(100), default="digest")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str | None] = mapped_column(String(100))
    #: The end of the window the last run covered: the next run sends releases created after.
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: What the last run did, or why it was refused (shown by ``digests list``).
    last_result: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DigestRecipient(Base):
    """A subscriber a digest campaign was planned for (``mailer.scheduling.digests``): the
    campaign's audience is these people, still limited at send time to active, unsuppressed
    subscribers of the digest's frequency."""

    __tablename__ = "digest_recipients"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class LeaderLease(Base):
    """A named lease that at most one process holds (SQLite stand-in for an advisory lock)."""

    __tablename__ = "leader_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
