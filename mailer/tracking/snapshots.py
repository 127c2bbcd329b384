"""Campaign reports for the dashboard: computed on each view when the campaign is small,
kept as a snapshot and refreshed in the background when it is big.

A report aggregates every delivery of the campaign (``reports.campaign_report``). Up to
``LIVE_LIMIT`` recipients that is quick and every view is exact. Above it, a view reads the
stored snapshot, which carries the time it was computed (``generated_at``), and a snapshot
older than its freshness window asks for a refresh that runs after the page is answered:

- while sending, or within two days of finishing (events still arrive): 60 seconds;
- later: 15 minutes (late opens and clicks still count, but rarely).

``claim`` makes one process the refresher (a conditional UPDATE, or an INSERT that loses a
race harmlessly); a claim older than ``CLAIM_TIMEOUT`` (a process killed mid-refresh) is
taken over. The CLI's ``campaigns report`` always computes afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign, CampaignStatus
from mailer.settings import Settings
from mailer.storage.base import utcnow
from mailer.storage.db import Database
from mailer.storage.refreshes import refresh_claimed
from mailer.tracking.models import ReportSnapshot
from mailer.tracking.reports import campaign_report

LIVE_LIMIT = 50_000
RECENT = timedelta(days=2)
CLAIM_TIMEOUT = timedelta(minutes=10)


@dataclass
class Report:
    """What a view shows: the report (None while the first snapshot is being made) and
    whether a refresh should start once the page is answered."""

    document: dict[str, Any] | None
    refresh: bool = False


def for_view(session: Session, campaign: Campaign, settings: Settings) -> Report:
    """The report to show now for ``campaign``; see the module docstring."""
    if (campaign.recipients or 0) <= LIVE_LIMIT:
        return Report(campaign_report(session, campaign.id, settings))
    snapshot = stored(session, campaign)
    if snapshot is None:
        return Report(None, refresh=True)
    return Report(snapshot.document, refresh=utcnow() - snapshot.computed_at > fresh_for(campaign))


def stored(session: Session, campaign: Campaign) -> ReportSnapshot | None:
    """The last snapshot computed for a big ``campaign``; None for a small one (they are
    counted on each view) and while the first is being made."""
    if (campaign.recipients or 0) <= LIVE_LIMIT:
        return None
    snapshot = session.get(ReportSnapshot, campaign.id)
    return snapshot if snapshot is not None and snapshot.document else None


def fresh_for(campaign: Campaign) -> timedelta:
    """How long a snapshot of ``campaign`` is shown before a view asks for a new one."""
    settled = campaign.status not in (CampaignStatus.SENDING, CampaignStatus.PAUSED)
    if settled and campaign.finished_at is not None and utcnow() - campaign.finished_at > RECENT:
        return timedelta(minutes=15)
    return timedelta(seconds=60)


def refresh(db: Database, campaign_id: int, settings: Settings) -> bool:
    """Compute and store the snapshot unless another process is already at it; True when
    this call stored one. Never raises: a failed refresh leaves the old snapshot shown."""

    def store(session: Session) -> None:
        document = campaign_report(session, campaign_id, settings)
        snapshot = session.get(ReportSnapshot, campaign_id)
        snapshot.document, snapshot.computed_at = document, utcnow()
        snapshot.refreshing_since = None

    return refresh_claimed(db, lambda session: claim(session, campaign_id), store,
                           f"the report of campaign {campaign_id}")


def claim(session: Session, campaign_id: int, now: datetime | None = None) -> bool:
    """Mark a refresh of ``campaign_id`` as under way; False when another one is (and has
    not been under way longer than ``CLAIM_TIMEOUT``)."""
    now = now or utcnow()
    taken = session.execute(
        update(ReportSnapshot).where(
            ReportSnapshot.campaign_id == campaign_id,
            or_(ReportSnapshot.refreshing_since.is_(None),
                ReportSnapshot.refreshing_since < now - CLAIM_TIMEOUT))
        .values(refreshing_since=now)).rowcount
    if taken:
        return True
    if session.get(ReportSnapshot, campaign_id) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(ReportSnapshot(campaign_id=campaign_id, computed_at=now, document={},
                                       refreshing_since=now))
    except IntegrityError:  # another process inserted it first: theirs is the refresh
        return False
    return True
