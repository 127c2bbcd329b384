"""Drawing a campaign's audience into ``deliveries``: one INSERT … SELECT, no rows in Python.

The audience is ``subscribers.segments.campaign_audience`` (active, unsuppressed subscribers
matching the campaign's segment or query) evaluated at the moment sending starts. The unique
(campaign_id, subscriber_id) constraint and the NOT EXISTS guard make drawing idempotent.
"""

from __future__ import annotations

from sqlalchemy import exists, func, insert, literal, select
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign
from mailer.delivery.records import Delivery
from mailer.delivery.records import DeliveryStatus as DS
from mailer.storage.base import UTCDateTime, utcnow


def draw_audience(session: Session, campaign: Campaign) -> int:
    """Insert a ``pending`` delivery for everyone in the audience not yet drawn; returns the
    total number of deliveries the campaign has afterwards.

    Raises QueryError / NotFound when the campaign's segment or query cannot be evaluated.
    """
    from subscribers.segments import campaign_audience

    audience = campaign_audience(session, campaign).order_by(None).subquery()
    table = Delivery.__table__
    already = exists().where(table.c.campaign_id == campaign.id,
                             table.c.subscriber_id == audience.c.id)
    rows = select(
        literal(campaign.id), audience.c.id, audience.c.email, literal(DS.PENDING),
        literal(0), literal(utcnow(), UTCDateTime()),
    ).where(~already).order_by(audience.c.id)
    session.execute(insert(table).from_select(
        ["campaign_id", "subscriber_id", "email", "status", "attempts", "created_at"], rows))
    return session.scalar(
        select(func.count()).select_from(table).where(table.c.campaign_id == campaign.id)) or 0
