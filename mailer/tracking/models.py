"""The one event log: every provider event, normalized, stored once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailer.storage.base import Base, JSONType, UTCDateTime, utcnow


class DeliveryEventRow(Base):
    """One provider event. Never updated after it is written (``forget`` scrubs a person's
    rows); delivery status, subscriber status and reports are all derived from these rows.

    ``delivery_id``, ``campaign_id`` and ``subscriber_id`` are references without foreign
    key constraints, on purpose: the webhook writes a thousand events per post, and
    PostgreSQL checks (and share-locks the row of) every constraint for every row, a third
    of the insert. The ingest path sets them only from rows it read in the same
    transaction; deliveries and campaigns are never deleted; ``subscribers.service.forget``
    clears ``subscriber_id`` itself (``mailer.tracking.suppression.erase_events_for``).
    """

    __tablename__ = "delivery_events"
    __table_args__ = (
        Index("ix_delivery_events_campaign_type", "campaign_id", "type"),
        Index("ix_delivery_events_subscriber_type", "subscriber_id", "type"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The provider's own event id (SendGrid ``sg_event_id``): stored once, so replays are no-ops.
    provider_event_id: Mapped[str] = mapped_column(String(200), unique=True)
    delivery_id: Mapped[int | None] = mapped_column(index=True)
    campaign_id: Mapped[int | None]
    #: Who the event is about (from the matched delivery, else by address); lets suppression
    #: count a person's soft bounces and lets ``subscribers forget`` find their events.
    subscriber_id: Mapped[int | None]
    #: The provider's message id as sent in the event (SendGrid ``sg_message_id``).
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    #: One of ``mailer.tracking.events.EVENT_TYPES``.
    type: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The event as the provider posted it: JSON text kept as is (``json``, not ``jsonb``, on
    #: PostgreSQL: never queried into, and parsing into ``jsonb`` cost a quarter of the insert).
    raw: Mapped[dict] = mapped_column(JSON, default=dict)


class ReportSnapshot(Base):
    """A campaign's report as last computed (``mailer.tracking.snapshots``): big campaigns
    show this, refreshed in the background, instead of aggregating every delivery on every
    view. ``refreshing_since`` marks a refresh under way so processes do not run two."""

    __tablename__ = "report_snapshots"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    document: Mapped[dict] = mapped_column(JSONType)
    refreshing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
