"""Creating and approving campaigns. Scheduling rules live in ``mailer.scheduling``, sending in
``mailer.delivery``; every state change goes through ``lifecycle.transition``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.campaigns.lifecycle import transition
from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as S
from mailer.errors import InvalidInput, NotFound, PolicyRefusal
from mailer.ingest.models import Release
from mailer.settings import Settings
from mailer.storage.base import utcnow
from subscribers.models import Segment


def get_campaign(session: Session, campaign_id: int, *, for_update: bool = False) -> Campaign:
    """Raises NotFound."""
    stmt = select(Campaign).where(Campaign.id == campaign_id)
    if for_update:
        stmt = stmt.with_for_update()
    campaign = session.scalar(stmt)
    if campaign is None:
        raise NotFound(f"no campaign with id {campaign_id}")
    return campaign


def create_campaign(
    session: Session, *, release_id: int, segment: str | None = None, query: str | None = None,
    template: str = "press_release", subject: str | None = None, by: str | None = None,
) -> Campaign:
    """Create a draft campaign for a release and an audience (a saved segment or a query).

    Raises NotFound for an unknown release or segment, InvalidInput when the audience is
    missing or given twice, QueryError for a query that does not parse.
    """
    release = session.get(Release, release_id)
    if release is None:
        raise NotFound(f"no release with id {release_id}")
    if (segment is None) == (query is None):
        raise InvalidInput("give exactly one of --segment or --query")
    segment_id = None
    if segment is not None:
        row = session.scalar(select(Segment).where(Segment.name == segment))
        if row is None:
            raise NotFound(f"no segment named {segment!r}")
        segment_id = row.id
    else:
        _check_query(query)
    campaign = Campaign(
        kind="release", release_id=release.id, segment_id=segment_id, query=query,
        template=template, subject=(subject or release.title).strip(), created_by=by,
        status=S.DRAFT,
    )
    session.add(campaign)
    session.flush()
    return campaign


def _check_query(query: str | None) -> None:
    try:
        from subscribers.segments import parse_query
    except ImportError:  # segments not built yet
        return
    parse_query(query or "")


def approve_campaign(session: Session, campaign: Campaign, *, by: str, settings: Settings) -> None:
    """Approve a draft. With MAILER_REQUIRE_APPROVAL the approver must not be the author.

    Runs the template check first. Raises PolicyRefusal, TemplateError, InvalidTransition.
    """
    if not by:
        raise InvalidInput("approval needs --by USER")
    if settings.require_approval and campaign.created_by and by == campaign.created_by:
        raise PolicyRefusal(
            f"campaign {campaign.id} was written by {by}; someone else must approve it"
        )
    _check_templates(campaign, settings)
    transition(session, campaign, S.APPROVED, by=by)
    campaign.approved_by = by
    campaign.approved_at = utcnow()


def _check_templates(campaign: Campaign, settings: Settings) -> None:
    try:
        from mailer.render.check import assert_template_ok
    except ImportError:  # render checks not built yet
        return
    assert_template_ok(campaign.template, settings)


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
        "created_by": campaign.created_by,
        "approved_by": campaign.approved_by,
        "approved_at": _iso(campaign.approved_at),
        "scheduled_at": _iso(campaign.scheduled_at),
        "started_at": _iso(campaign.started_at),
        "finished_at": _iso(campaign.finished_at),
        "recipients": campaign.recipients,
        "created_at": _iso(campaign.created_at),
    }


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None
