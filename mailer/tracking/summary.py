"""One line per campaign for the campaigns list: recipients, delivered, opens, clicks,
bounces and complaints, with their rates, for a page of campaigns in one grouped query.

The numbers are the same ones the report shows (``reports.campaign_report``): "delivered"
counts rows that arrived (status delivered, or a delivery time recorded before a later
open or bounce), rates of delivery and bounce are over the rows handed off, rates of opens,
clicks and complaints over those that arrived. Where no provider events come back (the
outbox, SMTP) the engagement numbers are None, not 0: nobody reported them.

A big campaign (``snapshots.LIVE_LIMIT``) takes its numbers from its report snapshot, with
the time they were counted; one with no snapshot yet is marked ``counting`` and named in
``stale`` so the page can refresh it after answering.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign
from mailer.delivery.records import HANDED_OFF, Delivery
from mailer.delivery.records import DeliveryStatus as DS
from mailer.settings import Settings
from mailer.tracking import snapshots
from mailer.tracking.reports import tracking

COLUMNS = ("recipients", "sent", "delivered", "opened", "clicked", "bounced", "complained")


def summaries(session: Session, campaigns: list[Campaign],
              settings: Settings) -> tuple[dict[int, dict[str, Any]], list[int]]:
    """(campaign id -> {recipients, sent, delivered, opened, clicked, bounced, complained,
    rates: {delivery, open, click, bounce, complaint}, provider_events, handed_off_as,
    counted_at (None: counted now), counting}, ids whose snapshot should be refreshed)."""
    big = {c.id for c in campaigns if (c.recipients or 0) > snapshots.LIVE_LIMIT}
    ids = [c.id for c in campaigns if c.id not in big]
    found = {row[0]: dict(zip(COLUMNS, (int(v or 0) for v in row[1:]), strict=True))
             for row in session.execute(_grouped(ids))} if ids else {}
    result, stale = {}, []
    for campaign in campaigns:
        counted_at = None
        counts = found.get(campaign.id, dict.fromkeys(COLUMNS, 0))
        if campaign.id in big:
            view = snapshots.for_view(session, campaign, settings)
            if view.refresh:
                stale.append(campaign.id)
            if view.document:
                counts, counted_at = _from_report(view.document), view.document["generated_at"]
        known = tracking(settings, session, campaign.id)
        result[campaign.id] = {**counts, **known, "rates": _rates(counts, known),
                               "counted_at": counted_at,
                               "counting": campaign.id in big and counted_at is None}
    return result, stale


def _from_report(report: dict[str, Any]) -> dict[str, int]:
    counts, funnel = report["counts"], report["funnel"]
    return {"recipients": counts["recipients"], "sent": funnel["sent"],
            "delivered": funnel["arrived"], "opened": counts["opened"],
            "clicked": counts["clicked"], "bounced": counts["bounced"],
            "complained": counts["complained"]}


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
