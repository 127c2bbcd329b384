"""Creating, editing, approving, scheduling, pausing and cancelling campaigns.

The rules (approval, quiet hours, blackout) live in ``mailer.scheduling.policy``, sending in
``mailer.delivery``; every state change goes through ``lifecycle.transition``. Functions here
take an open session and never commit: the caller's ``with db.session()`` block does, so a
refused action leaves nothing half-written.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.campaigns.lifecycle import EDITABLE, note, transition
from mailer.campaigns.models import Campaign, CampaignLog
from mailer.campaigns.models import CampaignStatus as S
from mailer.errors import InvalidInput, InvalidTransition, NotFound, PolicyRefusal
from mailer.ingest.models import Release
from mailer.render.check import assert_template_ok
from mailer.render.environment import check_release_template
from mailer.scheduling import policy
from mailer.scheduling.jobs import campaign_job_id, remove_job_row
from mailer.settings import Settings
from mailer.storage.base import utcnow
from subscribers.models import Segment
from subscribers.segments import parse_query


def get_campaign(session: Session, campaign_id: int, *, for_update: bool = False) -> Campaign:
    """Raises NotFound."""
    stmt = select(Campaign).where(Campaign.id == campaign_id)
    if for_update:
        stmt = stmt.with_for_update()
    campaign = session.scalar(stmt)
    if campaign is None:
        raise NotFound(f"no campaign with id {campaign_id}")
    return campaign


#: The longest preheader: inboxes show 40 to 140 characters of it after the subject.
PREHEADER_MAX = 150
#: The longest intro note: a few sentences above the release, not a second release.
INTRO_MAX = 2000


def clean_preheader(text: str | None) -> str | None:
    """The preheader as stored: one line, at most ``PREHEADER_MAX`` characters; None for
    none (blank). Raises InvalidInput naming the limit."""
    line = " ".join((text or "").split())
    if len(line) > PREHEADER_MAX:
        raise InvalidInput(f"the preheader is {len(line)} characters; at most "
                           f"{PREHEADER_MAX} fit (it is the preview line an inbox shows)")
    return line or None


def clean_intro(text: str | None) -> str | None:
    """The intro note as stored: plain text with its paragraphs (blank lines) kept, at most
    ``INTRO_MAX`` characters; None for none. Raises InvalidInput naming the limit."""
    note = (text or "").replace("\r\n", "\n").strip()
    if len(note) > INTRO_MAX:
        raise InvalidInput(f"the intro note is {len(note)} characters; at most {INTRO_MAX} "
                           "(a few sentences above the release)")
    return note or None


def create_campaign(
    session: Session, *, release_id: int, segment: str | None = None, query: str | None = None,
    template: str = "press_release", subject: str | None = None, by: str | None = None,
    preheader: str | None = None, intro: str | None = None,
) -> Campaign:
    """Create a draft campaign for a release and an audience (a saved segment or a query),
    optionally with a preheader and an intro note.

    Raises NotFound for an unknown release or segment, InvalidInput when the audience is
    missing or given twice or the preheader or intro is too long, QueryError for a query
    that does not parse.
    """
    release = session.get(Release, release_id)
    if release is None:
        raise NotFound(f"no release with id {release_id}")
    if (segment is None) == (query is None):
        raise InvalidInput("a campaign's audience is a saved segment or a query: give exactly one")
    segment_id = None
    if segment is not None:
        segment_id = _segment_id(session, segment)
    else:
        _check_query(query)
    campaign = Campaign(
        kind="release", release_id=release.id, segment_id=segment_id, query=query,
        template=check_release_template(template),
        subject=(subject or release.title).strip(), created_by=by, status=S.DRAFT,
        preheader=clean_preheader(preheader), intro=clean_intro(intro),
    )
    session.add(campaign)
    session.flush()
    # The history starts with its creation (who and when), not with its first move.
    session.add(CampaignLog(campaign_id=campaign.id, from_status=None, to_status=S.DRAFT,
                            by=by, reason="created"))
    return campaign


def duplicate_campaign(session: Session, original: Campaign, *, by: str | None) -> Campaign:
    """A new draft with ``original``'s release, audience, template and subject, written by
    ``by``; its history says where it came from. Digests are not copied (they are made by
    their schedule). Raises InvalidInput for a digest campaign."""
    if original.kind != "release" or original.release_id is None:
        raise InvalidInput(f"campaign {original.id} is a digest; digests are made by their "
                           "schedule, not copied")
    copy = Campaign(kind="release", release_id=original.release_id,
                    segment_id=original.segment_id, query=original.query,
                    template=original.template, subject=original.subject, created_by=by,
                    preheader=original.preheader, intro=original.intro, status=S.DRAFT)
    session.add(copy)
    session.flush()
    session.add(CampaignLog(campaign_id=copy.id, from_status=None, to_status=S.DRAFT, by=by,
                            reason=f"created as a copy of campaign {original.id}"))
    return copy


def _check_query(query: str | None) -> None:
    parse_query(query or "")


def approve_campaign(session: Session, campaign: Campaign, *, by: str, settings: Settings) -> None:
    """Approve a draft. With MAILER_REQUIRE_APPROVAL the approver must not be the author.

    Runs the template check first. Raises PolicyRefusal, TemplateError, InvalidTransition.
    """
    if not by:
        raise InvalidInput("approval needs --by USER")
    if campaign.status != S.DRAFT:
        raise InvalidTransition(f"campaign {campaign.id} is {campaign.status}; only a draft "
                                "can be approved")
    if settings.require_approval and campaign.created_by and by == campaign.created_by:
        raise PolicyRefusal(
            f"campaign {campaign.id} was written by {by}; someone else must approve it"
        )
    _check_templates(campaign, settings)
    transition(session, campaign, S.APPROVED, by=by)
    campaign.approved_by = by
    campaign.approved_at = utcnow()


def _check_templates(campaign: Campaign, settings: Settings) -> None:
    assert_template_ok(campaign.template, settings)


def update_campaign(
    session: Session, campaign: Campaign, *, by: str | None = None, subject: str | None = None,
    query: str | None = None, segment: str | None = None, template: str | None = None,
    preheader: str | None = None, intro: str | None = None,
) -> list[str]:
    """Change a campaign's content or audience; returns the names of the fields changed
    (None leaves a field as it is; an empty preheader or intro removes it).

    An approved, scheduled or missed campaign returns to draft (its approval, blackout override
    and scheduler job are gone: they were given for the old content).
    Raises InvalidTransition once sending has begun, InvalidInput when nothing would change or
    both a query and a segment are given, NotFound for an unknown segment, QueryError.
    """
    if campaign.status not in EDITABLE:
        raise InvalidTransition(
            f"campaign {campaign.id} is {campaign.status}; it can no longer be edited")
    if query is not None and segment is not None:
        raise InvalidInput("give at most one of --segment or --query")
    changes: dict[str, Any] = {}
    if subject is not None:
        if not subject.strip():
            raise InvalidInput("the subject must not be empty")
        changes["subject"] = subject.strip()
    if template is not None:
        changes["template"] = check_release_template(template)
    if preheader is not None:
        changes["preheader"] = clean_preheader(preheader)
    if intro is not None:
        changes["intro"] = clean_intro(intro)
    if query is not None:
        _check_query(query)
        changes.update(query=query, segment_id=None)
    if segment is not None:
        changes.update(segment_id=_segment_id(session, segment), query=None)
    changed = [name for name, value in changes.items() if getattr(campaign, name) != value]
    if not changed:
        raise InvalidInput("nothing to change: give a new subject, audience, template, "
                           "preheader or intro")
    for name in changed:
        setattr(campaign, name, changes[name])
    what = ", ".join(name.removesuffix("_id") for name in changed)
    if campaign.status == S.DRAFT:
        note(session, campaign, by=by, reason=f"edited {what}")
    else:
        remove_job_row(session, campaign_job_id(campaign.id))
        transition(session, campaign, S.DRAFT, by=by,
                   reason=f"edited {what}; needs approval again")
    return changed


def _segment_id(session: Session, name: str) -> int:
    row = session.scalar(select(Segment).where(Segment.name == name))
    if row is None:
        raise NotFound(f"no segment named {name!r}")
    return row.id


def approve_if_not_required(
    session: Session, campaign: Campaign, *, by: str | None, settings: Settings,
) -> None:
    """With MAILER_REQUIRE_APPROVAL off, a draft about to be scheduled or sent is approved on
    the spot (recorded as approved by the person sending it). Does nothing otherwise."""
    if campaign.status != S.DRAFT or settings.require_approval:
        return
    _check_templates(campaign, settings)
    approver = by or campaign.created_by or "unattended"
    transition(session, campaign, S.APPROVED, by=approver,
               reason="approval not required (MAILER_REQUIRE_APPROVAL=false)")
    campaign.approved_by = approver
    campaign.approved_at = utcnow()


def ready_to_send(
    session: Session, campaign: Campaign, *, at: datetime, settings: Settings,
    by: str | None, override_blackout: bool, reason: str | None, verb: str,
) -> None:
    """The checks shared by scheduling and sending now: approve when approval is not
    required, refuse a draft or a campaign in a state that cannot start, and record a blackout
    override for ``at``. Raises ApprovalRefusal, InvalidTransition, InvalidInput."""
    approve_if_not_required(session, campaign, by=by, settings=settings)
    if campaign.status == S.DRAFT:
        raise policy.ApprovalRefusal(
            f"campaign {campaign.id} is a draft; approve it first "
            f"(mailer campaigns approve {campaign.id} --by USER)")
    if campaign.status not in (S.APPROVED, S.SCHEDULED, S.MISSED):
        raise InvalidTransition(
            f"campaign {campaign.id} is {campaign.status}; it cannot be {verb}")
    if override_blackout:
        record_blackout_override(session, campaign, at=at, by=by, reason=reason,
                                 settings=settings)


def schedule_campaign(
    session: Session, campaign: Campaign, *, at: datetime, settings: Settings,
    by: str | None = None, override_blackout: bool = False, reason: str | None = None,
    now: datetime | None = None,
) -> None:
    """Schedule (or reschedule) an approved campaign to start at ``at`` (aware).

    Checks approval, quiet hours and the election blackout for ``at``; with
    ``override_blackout`` a blackout is overridden and the override (who, why) recorded.
    The leading scheduler picks the campaign up within MAILER_SCHEDULER_TICK seconds.
    Raises InvalidInput (past time, override without a reason), InvalidTransition,
    PolicyRefusal subclasses.
    """
    now = now or utcnow()
    if at.tzinfo is None:
        raise InvalidInput("the send time must carry a time zone")
    if at < now - timedelta(seconds=5):
        raise InvalidInput(f"{policy.format_local(at, settings)} is in the past; "
                           "use --now to send at once")
    ready_to_send(session, campaign, at=at, settings=settings, by=by,
                  override_blackout=override_blackout, reason=reason, verb="scheduled")
    policy.check_schedule_allowed(campaign, at, settings)
    remove_job_row(session, campaign_job_id(campaign.id))
    campaign.scheduled_at = at
    transition(session, campaign, S.SCHEDULED, by=by,
               reason=f"scheduled for {policy.format_local(at, settings)}")


def record_blackout_override(
    session: Session, campaign: Campaign, *, at: datetime, by: str | None,
    reason: str | None, settings: Settings,
) -> None:
    """Record that ``by`` overrides the election blackout for ``reason``.

    Raises InvalidInput without a reason. Nothing is recorded when ``at`` is outside every
    blackout (an override of nothing would silently pre-approve a later one).
    """
    if not reason or not reason.strip():
        raise InvalidInput('--override-blackout needs --reason "why this mailing must go out"')
    election = policy.blackout_election(at, settings)
    if election is None:
        return
    campaign.blackout_override_by = by
    campaign.blackout_override_reason = reason.strip()
    note(session, campaign, by=by, reason=(
        f"election blackout ({election.isoformat()}) overridden: {reason.strip()}"))


def pause_campaign(session: Session, campaign: Campaign, *, by: str | None = None,
                   reason: str | None = None) -> None:
    """Pause a sending campaign (senders stop within one batch). Raises InvalidTransition."""
    if campaign.status == S.SCHEDULED:
        raise InvalidTransition(
            f"campaign {campaign.id} is scheduled, not sending; to hold it, edit or cancel it")
    transition(session, campaign, S.PAUSED, by=by, reason=reason or "paused")


def resume_campaign(session: Session, campaign: Campaign, *, settings: Settings,
                    by: str | None = None, reason: str | None = None) -> None:
    """Resume a paused (or failed) send. The approval and blackout rules apply again (quiet
    hours do not: they only stop a send from starting).

    Raises InvalidTransition, PolicyRefusal.
    """
    if campaign.status not in (S.PAUSED, S.FAILED):
        raise InvalidTransition(
            f"campaign {campaign.id} is {campaign.status}; only a paused or failed send "
            "can be resumed")
    policy.check_send_allowed(campaign, settings, starting=False)
    transition(session, campaign, S.SENDING, by=by, reason=reason or "resumed")


def cancel_campaign(session: Session, campaign: Campaign, *, by: str | None = None,
                    reason: str | None = None) -> None:
    """Cancel an unfinished campaign; a scheduled one loses its scheduler job in the same
    transaction. Raises InvalidTransition for a sent or cancelled campaign."""
    remove_job_row(session, campaign_job_id(campaign.id))
    transition(session, campaign, S.CANCELLED, by=by, reason=reason or "cancelled")


def list_campaigns(session: Session, *, status: str | None = None) -> list[Campaign]:
    """Campaigns, newest first. Raises InvalidInput for an unknown status."""
    stmt = select(Campaign).order_by(Campaign.id.desc())
    if status is not None:
        if status not in S.ALL:
            raise InvalidInput(f"unknown status {status!r}; one of {', '.join(S.ALL)}")
        stmt = stmt.where(Campaign.status == status)
    return list(session.scalars(stmt))


def campaign_log(session: Session, campaign_id: int) -> list[CampaignLog]:
    return list(session.scalars(select(CampaignLog).where(CampaignLog.campaign_id == campaign_id)
                                .order_by(CampaignLog.at, CampaignLog.id)))


def log_to_dict(entry: CampaignLog) -> dict[str, Any]:
    return {"at": _iso(entry.at), "from": entry.from_status, "to": entry.to_status,
            "by": entry.by, "reason": entry.reason}


def campaign_to_dict(campaign: Campaign) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "status": campaign.status,
        "status_reason": campaign.status_reason,
        "kind": campaign.kind,
        "release_id": campaign.release_id,
        "segment_id": campaign.segment_id,
        "query": campaign.query,
        "template": campaign.template,
        "subject": campaign.subject,
        "preheader": campaign.preheader,
        "intro": campaign.intro,
        "created_by": campaign.created_by,
        "approved_by": campaign.approved_by,
        "approved_at": _iso(campaign.approved_at),
        "blackout_override_by": campaign.blackout_override_by,
        "blackout_override_reason": campaign.blackout_override_reason,
        "digest_id": campaign.digest_id,
        "scheduled_at": _iso(campaign.scheduled_at),
        "started_at": _iso(campaign.started_at),
        "finished_at": _iso(campaign.finished_at),
        "recipients": campaign.recipients,
        "created_at": _iso(campaign.created_at),
    }


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


#: Campaigns whose approval covered a segment's audience as it was when they were approved.
APPROVED_NOT_STARTED = (S.APPROVED, S.SCHEDULED, S.MISSED)


def campaigns_using_segment(session: Session, segment_id: int) -> list[Campaign]:
    """Campaigns that use the saved segment and have not started (an edit changes who they
    reach), oldest first."""
    return list(session.scalars(select(Campaign).where(
        Campaign.segment_id == segment_id,
        Campaign.status.in_((S.DRAFT, *APPROVED_NOT_STARTED))).order_by(Campaign.id)))


def withdraw_approvals_for_segment(session: Session, segment_id: int, *, by: str) -> list[int]:
    """Send every approved, scheduled or missed campaign using the segment back to draft:
    its approver agreed to an audience that has just changed. Returns their ids."""
    withdrawn = []
    for campaign in campaigns_using_segment(session, segment_id):
        if campaign.status in APPROVED_NOT_STARTED:
            remove_job_row(session, campaign_job_id(campaign.id))
            transition(session, campaign, S.DRAFT, by=by,
                       reason="its segment's query changed; approve it again")
            withdrawn.append(campaign.id)
    return withdrawn
