"""Subscribers, the topics they follow, their consent history, suppressions and segments."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from mailer.storage.base import Base, JSONType, UTCDateTime, utcnow
from subscribers.addresses import email_hash, email_key

# Closed sets; code compares against these names, never against literals.
PENDING, ACTIVE, UNSUBSCRIBED, BOUNCED, COMPLAINED = (
    "pending", "active", "unsubscribed", "bounced", "complained"
)
STATUSES = (PENDING, ACTIVE, UNSUBSCRIBED, BOUNCED, COMPLAINED)
#: Statuses a constituent (or their mail server) chose; no import may undo them.
SUPPRESSED_STATUSES = (UNSUBSCRIBED, BOUNCED, COMPLAINED)
FREQUENCIES = ("immediate", "daily", "weekly")


def _key_of_inserted_email(context) -> int:
    # Core inserts that name only ``email`` still get a correct key.
    return email_key(email_hash(context.get_current_parameters()["email"]))


def _key_of_inserted_hash(context) -> int:
    return email_key(context.get_current_parameters()["email_hash"])


class Topic(Base):
    """An issue area constituents can follow (e.g. ``human-trafficking``)."""

    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    #: term -> weight, used by the release tagger.
    terms: Mapped[dict] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Subscriber(Base):
    __tablename__ = "subscribers"
    __table_args__ = (
        # Sized for a million subscribers: the selective filters of segment queries get their
        # own index. ``status`` is indexed alone for the rare states (pending, bounced); the
        # audience's "status = active" matches nearly everyone and is checked on the scan
        # (see ``subscribers.query_sql.unindexed``), so it must not lead a composite index.
        Index("ix_subscribers_zip", "zip"),
        Index("ix_subscribers_county", "county"),
        Index("ix_subscribers_status", "status"),
        Index("ix_subscribers_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Normalized address (see ``subscribers.addresses``); unique case-insensitively because
    #: normalization lower-cases it.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    #: ``email_key(email_hash(email))`` (see ``subscribers.addresses``): lets the audience
    #: query anti-join the suppression list, which keeps only hashes. Set whenever ``email``
    #: is. Deliberately not indexed: every count and send probes the suppression list's
    #: index per subscriber instead, and an index here (random keys) cost a million-row
    #: import a third of its time.
    email_key: Mapped[int] = mapped_column(BigInteger, default=_key_of_inserted_email)
    name: Mapped[str | None] = mapped_column(String(200))
    zip: Mapped[str | None] = mapped_column(String(10))
    county: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(2))
    district: Mapped[str | None] = mapped_column(String(20))
    #: From the ZIP code (``subscribers.places``) when the person gave none.
    city: Mapped[str | None] = mapped_column(String(100))
    frequency: Mapped[str] = mapped_column(String(20), default="immediate")
    status: Mapped[str] = mapped_column(String(20), default=ACTIVE)
    consent_source: Mapped[str | None] = mapped_column(String(200))
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_ip: Mapped[str | None] = mapped_column(String(64))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When a confirmation email was handed off for this pending subscriber (at most once).
    confirm_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_digest_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Set on the preference page ("pause my emails"): no send draws them before this time.
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    topic_links: Mapped[list[SubscriberTopic]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", passive_deletes=True
    )

    @validates("email")
    def _keep_key_in_step(self, _key: str, value: str) -> str:
        self.email_key = email_key(email_hash(value))
        return value

    @property
    def email_hash(self) -> str:
        """SHA-256 (hex) of the address: what the suppression list would keep of it."""
        return email_hash(self.email)


class SubscriberTopic(Base):
    __tablename__ = "subscriber_topics"
    __table_args__ = (
        # (topic, subscriber) covers "who follows this topic" on its own: a count of a
        # topic's followers walks this index in subscriber order (see
        # ``subscribers.segments.audience_count_select``) and never reads the table.
        Index("ix_subscriber_topics_topic_id_subscriber_id", "topic_id", "subscriber_id"),
    )

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    topic_id: Mapped[int] = mapped_column(
        ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True
    )

    subscriber: Mapped[Subscriber] = relationship(back_populates="topic_links")


class StatusChange(Base):
    """Every change of a subscriber's status, with its cause (consent audit trail)."""

    __tablename__ = "status_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    old_status: Mapped[str | None] = mapped_column(String(20))
    new_status: Mapped[str] = mapped_column(String(20))
    cause: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Suppression(Base):
    """Addresses that must never be mailed again, kept as a SHA-256 of the normalized address so
    ``forget`` can erase the address itself."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: ``email_key(email_hash)``, what audiences are matched on (see ``Subscriber.email_key``).
    email_key: Mapped[int] = mapped_column(BigInteger, index=True,
                                           default=_key_of_inserted_hash)
    reason: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @validates("email_hash")
    def _keep_key_in_step(self, _key: str, value: str) -> str:
        self.email_key = email_key(value)
        return value


class Segment(Base):
    """A saved audience query, evaluated at send time."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    query: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AudienceSnapshot(Base):
    """An audience query's count as last made (``mailer.delivery.reach``): on a big list the
    dashboard shows this, with the time it was counted, and recounts it in the background
    instead of counting every follower of a topic on every view. ``query_key`` is the
    SHA-256 of the query text; ``refreshing_since`` marks a recount under way."""

    __tablename__ = "audience_snapshots"

    query_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    query: Mapped[str] = mapped_column(Text)
    total: Mapped[int] = mapped_column()
    now: Mapped[int] = mapped_column()
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    refreshing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)


__all__ = [
    "ACTIVE", "AudienceSnapshot", "BOUNCED", "COMPLAINED", "FREQUENCIES", "PENDING", "STATUSES",
    "SUPPRESSED_STATUSES", "Segment", "StatusChange", "Subscriber", "SubscriberTopic",
    "Suppression", "Topic", "UNSUBSCRIBED",
]
