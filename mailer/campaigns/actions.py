"""The named actions on a campaign — create, edit, approve, schedule, send now, pause,
resume, cancel, retry, test, preview — and what the faces read about one (progress, status,
report). The CLI, the dashboard and the API all call these, so a campaign behaves the same
whether it is driven from a terminal, /admin or /api.

Each action raises the owning module's ``MailerError`` subclasses (refusals, illegal
transitions, bad input) in domain words; a face turns them into an exit status, a form
message or a JSON 4xx. State changes go through ``mailer.campaigns.lifecycle`` only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from mailer.campaigns import service as campaigns
from mailer.campaigns.content import compile_for
from mailer.campaigns.lifecycle import retry_sending
from mailer.campaigns.models import Campaign, CampaignStatus
from mailer.delivery import oneoff, reach
from mailer.delivery.audience import count_audience
from mailer.delivery.engine import in_doubt_policy
from mailer.delivery.oneoff import personalized_copy
from mailer.delivery.records import grouped
from mailer.delivery.retry import count_retryable, requeue_failed
from mailer.errors import InvalidInput, InvalidTransition, MailerError, NotFound
from mailer.render.environment import check_release_template
from mailer.scheduling.policy import check_send_allowed
from mailer.scheduling.starting import start_now
from mailer.settings import Settings
from mailer.storage.db import Database
from mailer.tracking import reports, snapshots
from mailer.tracking.report_html import render_report_html
from subscribers import segments
from subscribers.models import Segment

#: The years a send may be scheduled in. Near the ends of the calendar (year 1, year 9999)
#: moving a time between zones overflows, and a client may send any ISO 8601 time.
SCHEDULE_YEARS = (1970, 9000)


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
    """The contract's ``campaigns status`` document (from tracking), with what the counts
    mean here: the word for rows handed off, whether provider events come back, and how
    in-doubt deliveries are settled (explicit when no evidence can arrive)."""
    return {**reports.campaign_status(session, campaign.id),
            **reports.tracking(settings, session, campaign.id),
            "in_doubt_policy": in_doubt_policy(settings)}


def report_html(session: Session, campaign: Campaign, settings: Settings) -> str:
    """The self-contained HTML report with charts (from tracking), computed now."""
    return render_report_html(reports.campaign_report(session, campaign.id, settings))


def report_view(session: Session, campaign: Campaign, settings: Settings) -> snapshots.Report:
    """The report as the dashboard shows it: exact for a small campaign, the last snapshot
    for a big one (``Report.refresh`` says to run ``refresh_report`` after answering)."""
    return snapshots.for_view(session, campaign, settings)


def report_page(report: dict[str, Any]) -> str:
    """A report document as the self-contained HTML page with charts."""
    return render_report_html(report)


def refresh_report(db: Database, campaign_id: int, settings: Settings) -> None:
    """Recompute a big campaign's report snapshot (a no-op when another process is)."""
    snapshots.refresh(db, campaign_id, settings)


def timeline(session: Session, email: str, settings: Settings) -> list[dict[str, Any]]:
    """One person's deliveries with their provider events, newest first (from tracking)."""

    try:
        found = reports.person_timeline(session, email, settings)
    except NotFound:
        return []
    return list(reversed(found["deliveries"]))


def audience(session: Session, campaign: Campaign,
             settings: Settings | None = None) -> dict[str, Any] | None:
    """Who it reaches if it starts now, ``{"now", "in_digests"}`` (see
    ``mailer.delivery.audience.count_audience``); None once its audience is drawn (then
    ``recipients`` is the count), ``{"error"}`` when its audience cannot be evaluated.

    Counted afresh unless ``settings`` is given (a page): then, on a big list, it may be the
    stored count, with ``counted_at`` and ``recount`` (``mailer.delivery.reach``; run
    ``recount_audience`` with it after answering)."""
    if campaign.started_at is not None:
        return None
    try:
        if settings is None:
            return count_audience(session, campaign)
        return reach.campaign_reach(session, settings, campaign)
    except MailerError as exc:
        return {"error": " ".join(str(exc).split())}


def recount_audience(db: Database, query: str | None) -> None:
    """Count a stored audience again (``mailer.delivery.reach.recount``); None: nothing to."""
    if query:
        reach.recount(db, query)


def retryable(session: Session, campaign: Campaign) -> int:
    """How many recipients ``retry`` would send to now (0 unless the campaign is sent)."""
    if campaign.status != CampaignStatus.SENT or campaign.kind != "release":
        return 0
    return count_retryable(session, campaign.id)


def preview_html(session: Session, campaign: Campaign, settings: Settings, signer) -> str:
    """The campaign as a sample recipient receives it (personalized, links signed for id 0)."""
    message = compile_for(session, campaign, settings)
    return personalized_copy(message, oneoff.SAMPLE, settings, signer).html


# --- acting ---------------------------------------------------------------------------------

def create(session: Session, *, release_id: int, segment: str | None, query: str | None,
           subject: str | None, template: str | None, by: str | None,
           settings: Settings, preheader: str | None = None,
           intro: str | None = None) -> Campaign:
    """A draft campaign of a release for a saved segment or a query (exactly one), with one
    of the installed release templates, and optionally a preheader (the inbox preview line,
    at most 150 characters) and an intro note above the release. Raises NotFound,
    InvalidInput, QueryError."""
    template = check_release_template(template or "press_release", settings)
    return campaigns.create_campaign(
        session, release_id=release_id, segment=segment or None, query=query or None,
        subject=subject or None, template=template, by=by, preheader=preheader, intro=intro)


def duplicate(session: Session, campaign: Campaign, *, by: str | None) -> Campaign:
    """A new draft copying ``campaign``'s release, audience, template and subject (to send
    a release again, or to another audience). Raises InvalidInput for a digest."""
    return campaigns.duplicate_campaign(session, campaign, by=by)


def approve(session: Session, campaign: Campaign, *, by: str, settings: Settings) -> None:
    """Approve a draft (runs the template check; the author cannot approve). Raises
    PolicyRefusal, TemplateError, InvalidTransition."""
    campaigns.approve_campaign(session, campaign, by=by, settings=settings)


def edit(session: Session, campaign: Campaign, *, by: str, settings: Settings,
         subject: str | None = None, query: str | None = None, segment: str | None = None,
         template: str | None = None, preheader: str | None = None,
         intro: str | None = None) -> list[str]:
    """Change a campaign's subject, audience, template, preheader or intro before it sends
    (an approved or scheduled one goes back to draft); returns the fields changed. Raises
    InvalidTransition, InvalidInput (nothing to change, not an installed release template),
    QueryError, NotFound."""
    if template is not None:
        check_release_template(template, settings)
    return campaigns.update_campaign(session, campaign, by=by, subject=subject, query=query,
                                     segment=segment, template=template,
                                     preheader=preheader, intro=intro)


def schedule(session: Session, campaign: Campaign, *, at: datetime, by: str,
             settings: Settings, override_blackout: bool = False,
             reason: str | None = None) -> None:
    """Schedule an approved campaign at ``at`` (aware). Raises PolicyRefusal (approval, quiet
    hours, blackout), InvalidTransition, InvalidInput (a time in the past, or outside
    ``SCHEDULE_YEARS``)."""
    if not SCHEDULE_YEARS[0] <= at.year <= SCHEDULE_YEARS[1]:
        raise InvalidInput("give a time to send between the years "
                           f"{SCHEDULE_YEARS[0]} and {SCHEDULE_YEARS[1]}")
    campaigns.schedule_campaign(session, campaign, at=at, settings=settings, by=by,
                                override_blackout=override_blackout, reason=reason)


def send_now(db: Database, settings: Settings, campaign_id: int, *, by: str,
             override_blackout: bool = False, reason: str | None = None) -> None:
    """Start sending an approved (or missed) campaign at once: its audience is drawn and the
    workers send it. Never passes through ``scheduled``, so a running scheduler cannot race
    to start it too; a refusal leaves it as it was. Raises PolicyRefusal,
    InvalidTransition, InvalidInput, QueryError (see ``mailer.scheduling.starting``)."""
    start_now(db, settings, campaign_id, by=by, override_blackout=override_blackout,
              reason=reason)


def pause(session: Session, campaign: Campaign, *, by: str | None, settings: Settings,
          reason: str | None = None) -> None:
    """Pause a send (senders stop within one batch) or hold a scheduled campaign."""
    campaigns.pause_campaign(session, campaign, by=by, reason=reason)


def resume(session: Session, campaign: Campaign, *, by: str | None, settings: Settings,
           reason: str | None = None) -> None:
    """Resume a paused send (the workers pick it up again)."""
    campaigns.resume_campaign(session, campaign, settings=settings, by=by, reason=reason)


def cancel(session: Session, campaign: Campaign, *, by: str | None, settings: Settings,
           reason: str | None = None) -> None:
    """Cancel a campaign that has not finished; a scheduled one will not go out."""
    campaigns.cancel_campaign(session, campaign, by=by, reason=reason)


def retry(session: Session, campaign: Campaign, *, by: str | None,
          settings: Settings) -> int:
    """Send a sent campaign again to exactly its recipients whose delivery failed for a
    reason worth another try and who can still be mailed (see ``mailer.delivery.retry``):
    their rows go back to pending and the campaign to ``sending``, in one transaction, and
    the workers send them through the usual claims. Returns how many were queued again.

    Raises InvalidTransition (not sent, or another retry got there first), InvalidInput (a
    digest, or nobody to retry), PolicyRefusal (the election blackout, as for a resume).
    """
    if campaign.kind != "release":
        raise InvalidInput(f"campaign {campaign.id} is a digest; its failed recipients get "
                           "those releases in their next digest")
    if campaign.status != CampaignStatus.SENT:
        raise InvalidTransition(f"campaign {campaign.id} is {campaign.status}; only a sent "
                                "campaign's failed recipients can be retried")
    check_send_allowed(campaign, settings, starting=False)
    queued = requeue_failed(session, campaign.id, by=by)
    if not queued:
        raise InvalidInput(f"campaign {campaign.id} has no failed recipients to retry")
    retry_sending(session, campaign, by=by,
                  reason=f"retrying {queued} recipient{'s' if queued != 1 else ''} whose "
                         "delivery failed")
    return queued


def send_test(session: Session, campaign: Campaign, *, to: list[str], settings: Settings,
              signer) -> int:
    """Send a "[TEST]" copy to each address without touching the campaign (see
    ``mailer.delivery.oneoff``). Returns how many were accepted. Raises InvalidInput for an
    empty, too long or invalid address list, or when the transport refused an address."""
    message, people = oneoff.test_copy(session, campaign, to, settings)
    results = oneoff.send_one_off(message, people, settings, signer)
    if oneoff.refused(results):
        raise InvalidInput(f"the transport refused {', '.join(oneoff.refused(results))}")
    return len(results)


def edit_segment(session: Session, segment: Segment, *, name: str, query: str,
                 by: str) -> dict[str, list]:
    """Rename a saved segment and/or change its query. A changed query sends every
    approved, scheduled or missed campaign using it back to draft, since its approval
    covered the old audience. Returns ``{"changed": [...], "withdrawn": [campaign ids]}``.
    Raises QueryError, InvalidInput (empty or taken name, nothing to change)."""
    changed = segments.update_segment(session, segment, name=name, query=query)
    withdrawn = []
    if "query" in changed:
        withdrawn = campaigns.withdraw_approvals_for_segment(session, segment.id, by=by)
    return {"changed": changed, "withdrawn": withdrawn}
