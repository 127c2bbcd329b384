"""What goes out when: the scheduled campaigns and the digest runs of the coming days, in the
office's time zone, grouped by the office's calendar day (the dashboard's schedule page).

A scheduled campaign is listed at its time with who approved it and how many people it
reaches if it starts then (counted now, as its confirmation page counts). A digest is listed
at every run its schedule makes in the window (a daily one each day, a weekly one once a
week); how many get a run is only known when it runs (people owed nothing get nothing).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as CS
from mailer.delivery.reach import campaign_reach
from mailer.errors import MailerError
from mailer.scheduling.digests import digest_trigger, list_digests
from mailer.scheduling.models import Digest
from mailer.settings import Settings
from mailer.storage.base import utcnow

#: How far ahead the schedule looks.
DAYS = 14


@dataclass
class Entry:
    """One thing going out: ``kind`` is ``campaign`` or ``digest``; ``at`` is aware UTC."""

    kind: str
    id: int
    title: str
    at: datetime
    approved_by: str | None = None
    #: ``{"now", "in_digests"}`` (with ``counted_at`` and ``recount`` when it is a stored
    #: count: ``mailer.delivery.reach``), or ``{"error"}`` when it cannot be counted.
    audience: dict[str, Any] | None = None
    frequency: str | None = None


@dataclass
class Day:
    day: date  # in the office's zone
    entries: list[Entry]


def upcoming(session: Session, settings: Settings, *, days: int = DAYS,
             now: datetime | None = None) -> list[Day]:
    """The days (office calendar) from today through ``days`` ahead that have something
    going out, each with its entries in time order. A scheduled campaign whose time has
    passed (no scheduler ran yet) is listed too, on its own day."""
    now = now or utcnow()
    until = now + timedelta(days=days)
    entries = [*_campaigns(session, settings, until), *_digest_runs(session, settings, now, until)]
    entries.sort(key=lambda entry: (entry.at, entry.kind, entry.id))
    grouped: dict[date, list[Entry]] = {}
    for entry in entries:
        grouped.setdefault(entry.at.astimezone(settings.zone).date(), []).append(entry)
    return [Day(day, found) for day, found in grouped.items()]


def _campaigns(session: Session, settings: Settings, until: datetime) -> Iterator[Entry]:
    scheduled = session.scalars(
        select(Campaign).where(Campaign.status == CS.SCHEDULED, Campaign.scheduled_at < until)
        .order_by(Campaign.scheduled_at))
    for campaign in scheduled:
        yield Entry("campaign", campaign.id, campaign.subject, campaign.scheduled_at,
                    approved_by=campaign.approved_by,
                    audience=_audience(session, settings, campaign))


def _audience(session: Session, settings: Settings, campaign: Campaign) -> dict[str, Any]:
    try:
        return campaign_reach(session, settings, campaign)
    except MailerError as exc:  # a deleted segment, a query that no longer parses
        return {"error": " ".join(str(exc).split())}


def _digest_runs(session: Session, settings: Settings, now: datetime,
                 until: datetime) -> Iterator[Entry]:
    for digest in list_digests(session):
        if digest.active:
            yield from _runs(digest, settings, now, until)


def _runs(digest: Digest, settings: Settings, now: datetime, until: datetime
          ) -> Iterator[Entry]:
    """Every run of ``digest`` in [now, until), from its trigger (DST handled there)."""
    trigger = digest_trigger(digest, settings)
    previous = None
    moment = now.astimezone(settings.zone)
    while True:
        moment = trigger.get_next_fire_time(previous, moment)
        if moment is None or moment >= until:
            return
        yield Entry("digest", digest.id, digest.name, moment.astimezone(now.tzinfo),
                    frequency=digest.frequency)
        previous = moment
        moment = moment + timedelta(seconds=1)
