"""The one event log: every provider event, normalized, stored once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailer.storage.base import Base, JSONType, UTCDateTime, utcnow


class DeliveryEventRow(Base):
    __tablename__ = "delivery_events"
    __table_args__ = (Index("ix_delivery_events_campaign_type", "campaign_id", "type"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The provider's own event id (SendGrid ``sg_event_id``): stored once, so replays are no-ops.
    provider_event_id: Mapped[str] = mapped_column(String(200), unique=True)
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), index=True
    )
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    email: Mapped[str | None] = mapped_column(String(320))
    type: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    raw: Mapped[dict] = mapped_column(JSONType, default=dict)
