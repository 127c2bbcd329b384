"""What a campaign says: its releases gathered from the database and handed to the renderer.

``mailer.render`` takes data and fetches none; this is the one place that turns a campaign
into the releases it renders (the release of a release campaign, or a digest's releases in
the order they were chosen), for every face and for the engine.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign
from mailer.errors import InvalidInput, NotFound
from mailer.ingest.models import Release
from mailer.render import compile_campaign, render_web_view
from mailer.settings import Settings
from mailer.transports.base import CompiledMessage


def campaign_releases(session: Session, campaign: Campaign) -> list[Release]:
    """The releases ``campaign`` renders, in order. Raises NotFound when one was deleted,
    InvalidInput for a digest campaign with none."""
    if campaign.kind == "digest":
        return digest_releases(session, campaign)
    release = session.get(Release, campaign.release_id) if campaign.release_id else None
    if release is None:
        raise NotFound(f"campaign {campaign.id} has no release (id {campaign.release_id})")
    return [release]


def digest_releases(session: Session, campaign: Any) -> list[Release]:
    """A digest campaign's releases in its order. Raises NotFound if one was deleted."""
    ids = list(campaign.digest_release_ids or [])
    if not ids:
        raise InvalidInput(f"digest campaign {campaign.id} has no releases to render")
    found = {r.id: r for r in session.scalars(select(Release).where(Release.id.in_(ids)))}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"digest campaign {campaign.id}: release {missing[0]} no longer exists")
    return [found[i] for i in ids]


def compile_for(session: Session, campaign: Campaign, settings: Settings) -> CompiledMessage:
    """``campaign`` rendered once with placeholders (see ``mailer.render.compile_campaign``)."""
    return compile_campaign(campaign, campaign_releases(session, campaign), settings)


def web_view(session: Session, campaign: Campaign, settings: Settings) -> str:
    """The archive page's HTML for ``campaign``: no personal data, neutral links."""
    return render_web_view(campaign, campaign_releases(session, campaign), settings)
