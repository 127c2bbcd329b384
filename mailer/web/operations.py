"""The dashboard's and the API's actions on campaigns, mapped onto the capabilities that own
them (campaigns, scheduling, delivery, render, tracking). Both front ends call these, so a
campaign behaves the same whether it is driven from /admin, /api or the CLI.

Each function takes an open session and the acting user's name; each raises the owning
capability's ``MailerError`` subclasses (refusals, illegal transitions) unchanged.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.campaigns import service as campaigns
from mailer.campaigns.models import Campaign, Delivery, DeliveryStatus
from mailer.errors import InvalidInput, MailerError
from mailer.settings import Settings

#: Delivery states that mean "handed off or settled" (progress bars count these as done).
NOT_DONE = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)
SAMPLE_NAME = "Pat Sample"


class Unavailable(MailerError):
    """A capability this action needs is not installed in this build."""


def _capability(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise Unavailable(f"{module}.{name} is not available in this build") from None


# --- reading --------------------------------------------------------------------------------

def delivery_counts(session: Session, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """campaign id -> {delivery status: rows} in one grouped query."""
    counts: dict[int, dict[str, int]] = {cid: {} for cid in campaign_ids}
    if not campaign_ids:
        return counts
    rows = session.execute(
        select(Delivery.campaign_id, Delivery.status, func.count())
        .where(Delivery.campaign_id.in_(campaign_ids))
        .group_by(Delivery.campaign_id, Delivery.status)
    )
    for campaign_id, status, n in rows:
        counts[campaign_id][status] = n
    return counts


def progress(campaign: Campaign, counts: dict[str, int]) -> dict[str, Any]:
    """What a progress bar shows: how many of the drawn recipients are handed off."""
    total = sum(counts.values())
    done = total - sum(counts.get(s, 0) for s in NOT_DONE)
    return {"id": campaign.id, "status": campaign.status, "recipients": total, "done": done,
            "percent": round(100 * done / total, 1) if total else 0.0, "counts": counts}


def status(session: Session, campaign: Campaign, settings: Settings) -> dict[str, Any]:
    """The contract's ``campaigns status`` document (tracking's report when installed)."""
    try:
        counts_fn = _capability("mailer.tracking.reports", "campaign_status")
    except Unavailable:
        counts = delivery_counts(session, [campaign.id])[campaign.id]
        return {"id": campaign.id, "status": campaign.status,
                "counts": {"recipients": sum(counts.values()), **counts}}
    return counts_fn(session, campaign.id)


def report_html(session: Session, campaign: Campaign, settings: Settings) -> str:
    """The self-contained HTML report with charts, from tracking."""
    return _capability("mailer.tracking.reports", "report_html")(session, campaign.id, settings)


def preview_html(session: Session, campaign: Campaign, settings: Settings, signer) -> str:
    """The campaign as a sample recipient receives it (personalized, links signed for id 0)."""
    compile_campaign = _capability("mailer.render.compile", "compile_campaign")
    from mailer.render.placeholders import Personalizer, personalize

    message = compile_campaign(session, campaign, settings)
    recipient = Personalizer(settings, signer, campaign.id).recipient(
        email="sample@example.org", name=SAMPLE_NAME, subscriber_id=None)
    return personalize(message, recipient).html


# --- acting ---------------------------------------------------------------------------------

def create(session: Session, *, release_id: int, segment: str | None, query: str | None,
           subject: str | None, template: str | None, by: str) -> Campaign:
    return campaigns.create_campaign(
        session, release_id=release_id, segment=segment or None, query=query or None,
        subject=subject or None, template=template or "press_release", by=by)


def approve(session: Session, campaign: Campaign, *, by: str, settings: Settings) -> None:
    campaigns.approve_campaign(session, campaign, by=by, settings=settings)


def schedule(session: Session, campaign: Campaign, *, at: datetime | None, by: str,
             settings: Settings) -> None:
    """Schedule at ``at`` (aware), or now when None. Raises PolicyRefusal, InvalidTransition."""
    fn = _capability("mailer.scheduling.service", "schedule_campaign")
    fn(session, campaign, at=at, settings=settings, by=by)


def pause(session: Session, campaign: Campaign, *, by: str, settings: Settings) -> None:
    _capability("mailer.scheduling.service", "pause_campaign")(
        session, campaign, by=by, settings=settings)


def resume(session: Session, campaign: Campaign, *, by: str, settings: Settings) -> None:
    _capability("mailer.scheduling.service", "resume_campaign")(
        session, campaign, by=by, settings=settings)


def cancel(session: Session, campaign: Campaign, *, by: str, settings: Settings) -> None:
    _capability("mailer.scheduling.service", "cancel_campaign")(
        session, campaign, by=by, settings=settings)


def send_test(session: Session, campaign: Campaign, *, to: list[str], settings: Settings,
              signer) -> int:
    """Send a "[TEST]" copy to each address without touching the campaign. Returns how many
    were accepted. Raises InvalidInput for an empty or invalid address list."""
    from subscribers.addresses import normalize_email

    addresses = [normalize_email(a) for a in to if a.strip()]
    if not addresses:
        raise InvalidInput("give at least one address for the test")
    if len(addresses) > 10:
        raise InvalidInput("a test goes to at most 10 addresses")
    send = _capability("mailer.render.test_send", "send_test")
    return send(session, campaign, addresses, settings=settings, signer=signer)
