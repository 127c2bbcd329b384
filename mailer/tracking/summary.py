"""One line per campaign for the campaigns list: recipients, delivered, opens, clicks,
bounces and complaints, with their rates, for a page of campaigns in one grouped query.

The numbers are the same ones the report shows (``reports.campaign_report``): "delivered"
counts rows that arrived (status delivered, or a delivery time recorded before a later
open or bounce), rates of delivery and bounce are over the rows handed off, rates of opens,
clicks and complaints over those that arrived. Where no provider events come back (the
outbox, SMTP) the engagement numbers are None, not 0: nobody reported them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign
from mailer.delivery.records import HANDED_OFF, Delivery
from mailer.delivery.records import DeliveryStatus as DS
from mailer.settings import Settings
from mailer.tracking.reports import tracking

COLUMNS = ("recipients", "sent", "delivered", "opened", "clicked", "bounced", "complained")


def summaries(session: Session, campaigns: list[Campaign],
              settings: Settings) -> dict[int, dict[str, Any]]:
    """campaign id -> {recipients, sent, delivered, opened, clicked, bounced, complained,
    rates: {delivery, open, click, bounce, complaint}, provider_events, handed_off_as}."""
    ids = [c.id for c in campaigns]
    found = {row[0]: dict(zip(COLUMNS, (int(v or 0) for v in row[1:]), strict=True))
             for row in session.execute(_grouped(ids))} if ids else {}
    result = {}
    for campaign in campaigns:
        counts = found.get(campaign.id, dict.fromkeys(COLUMNS, 0))
        known = tracking(settings, session, campaign.id)
        result[campaign.id] = {**counts, **known, "rates": _rates(counts, known)}
    return result


def _grouped(ids: list[int]):
    def rows_where(condition):
        return func.sum(case((condition, 1), else_=0))

    arrived = or_(Delivery.status == DS.DELIVERED, Delivery.delivered_at.is_not(None))
    return (select(Delivery.campaign_id, func.count(), rows_where(Delivery.status.in_(HANDED_OFF)),
                   rows_where(arrived), func.count(Delivery.opened_at),
                   func.count(Delivery.clicked_at), rows_where(Delivery.status == DS.BOUNCED),
                   func.count(Delivery.complained_at))
            .where(Delivery.campaign_id.in_(ids)).group_by(Delivery.campaign_id))


def _rates(counts: dict[str, int], known: dict[str, Any]) -> dict[str, float | None]:
    def ratio(part: str, whole: str) -> float | None:
        return round(counts[part] / counts[whole], 4) if counts[whole] else None

    if not known["provider_events"]:
        return dict.fromkeys(("delivery", "bounce", "open", "click", "complaint"))
    return {"delivery": ratio("delivered", "sent"), "bounce": ratio("bounced", "sent"),
            "open": ratio("opened", "delivered"), "click": ratio("clicked", "delivered"),
            "complaint": ratio("complained", "delivered")}
