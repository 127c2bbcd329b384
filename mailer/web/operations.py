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

from sqlalchemy.orm import Session

from mailer.campaigns import service as campaigns
from mailer.campaigns.models import Campaign, CampaignStatus
from mailer.delivery.records import grouped
from mailer.errors import InvalidInput, MailerError
from mailer.settings import Settings
from mailer.storage.base import utcnow

SAMPLE_NAME = "Pat Sample"
#: The years a send may be scheduled in. Near the ends of the calendar (year 1, year 9999)
#: moving a time between zones overflows, and a client may send any ISO 8601 time.
SCHEDULE_YEARS = (1970, 9000)


class Unavailable(MailerError):
    """A capability this action needs is not installed in this build."""


def _capability(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise Unavailable(f"{module}.{name} is not available in this build") from None


# --- reading --------------------------------------------------------------------------------

def needs_counting(campaign: Campaign) -> bool:
    """Whether the list must count delivery rows to show progress. A sent campaign's
    progress is known without reading a million rows; one never started has none."""
    return campaign.started_at is not None and campaign.status != CampaignStatus.SENT


def progress(campaign: Campaign, counts: dict[str, int]) -> dict[str, Any]:
    """What a progress bar shows: how many of the drawn recipients are handed off."""
    if not counts and campaign.status == CampaignStatus.SENT and campaign.recipients:
        counts = {}
        total = done = campaign.recipients
    else:
        total = sum(counts.values())
        done = total - grouped(counts)["unsettled"]
    return {"id": campaign.id, "status": campaign.status, "recipients": total, "done": done,
            "percent": round(100 * done / total, 1) if total else 0.0, "counts": counts}


def status(session: Session, campaign: Campaign, settings: Settings) -> dict[str, Any]:
    """The contract's ``campaigns status`` document (from tracking)."""
    return _capability("mailer.tracking.reports", "campaign_status")(session, campaign.id)


def report_html(session: Session, campaign: Campaign, settings: Settings) -> str:
    """The self-contained HTML report with charts (from tracking)."""
    report = _capability("mailer.tracking.reports", "campaign_report")(
        session, campaign.id, settings)
    return _capability("mailer.tracking.report_html", "render_report_html")(report)


def timeline(session: Session, email: str, settings: Settings) -> list[dict[str, Any]]:
    """One person's deliveries with their provider events, newest first (from tracking)."""
    from mailer.errors import NotFound

    try:
        found = _capability("mailer.tracking.reports", "person_timeline")(
            session, email, settings)
    except NotFound:
        return []
    return list(reversed(found["deliveries"]))


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
    """Schedule at ``at`` (aware), or now when None (then call ``start_now`` after the
    transaction commits). Raises PolicyRefusal (approval, quiet hours, blackout),
    InvalidTransition, InvalidInput (a time in the past, or outside ``SCHEDULE_YEARS``)."""
    if at is not None and not SCHEDULE_YEARS[0] <= at.year <= SCHEDULE_YEARS[1]:
        raise InvalidInput("give a time to send between the years "
                           f"{SCHEDULE_YEARS[0]} and {SCHEDULE_YEARS[1]}")
    campaigns.schedule_campaign(session, campaign, at=at or utcnow(), settings=settings, by=by)


def start_now(db, settings: Settings, campaign_id: int) -> str:
    """Start a campaign scheduled for now without waiting for the scheduler's next tick
    (what ``mailer campaigns schedule --now`` does). Safe beside a running scheduler: both
    start campaigns under the scheduler's start lock, and a campaign starts only once."""
    from mailer.scheduling.scheduler import _start_lock, start_scheduled_campaign

    with _start_lock:
        return start_scheduled_campaign(db, settings, campaign_id)


def pause(session: Session, campaign: Campaign, *, by: str, settings: Settings) -> None:
    campaigns.pause_campaign(session, campaign, by=by)


def resume(session: Session, campaign: Campaign, *, by: str, settings: Settings) -> None:
    campaigns.resume_campaign(session, campaign, settings=settings, by=by)


def cancel(session: Session, campaign: Campaign, *, by: str, settings: Settings) -> None:
    campaigns.cancel_campaign(session, campaign, by=by)


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
    return _send_test_copies(session, campaign, addresses, settings, signer)


def _send_test_copies(session, campaign, addresses, settings, signer) -> int:
    from mailer.cli.render import make_test_copy  # the CLI's "[TEST]" copy, shared
    from mailer.render import Personalizer, compile_campaign
    from mailer.transports import Batch, get_transport

    message = make_test_copy(compile_campaign(session, campaign, settings))
    personalizer = Personalizer(settings, signer, None)
    recipients = [personalizer.recipient(email=a, name=SAMPLE_NAME, subscriber_id=None)
                  for a in addresses]
    transport = get_transport(settings)
    try:
        results = transport.send(Batch(message, recipients))
    finally:
        transport.close()
    refused = [r.recipient.email for r in results if not r.accepted]
    if refused:
        raise InvalidInput(f"the {transport.name} transport refused {', '.join(refused)}")
    return len(results)
