"""Starting a campaign at its time, or now: the one place a scheduled or approved campaign is
handed to the delivery engine (``start_campaign`` draws the audience, -> ``sending``).

``start_scheduled_campaign`` is what the scheduler's jobs, its reconcile pass, digests and the
dashboard's "start" call; ``start_now`` is ``campaigns schedule --now``. Both re-check the
rules at send time, and ``start_lock`` serialises starts within one process so that a
campaign is started at most once however many paths reach it.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from mailer.campaigns.lifecycle import approve_missed, mark_missed
from mailer.campaigns.models import CampaignStatus as S
from mailer.campaigns.service import get_campaign, ready_to_send
from mailer.delivery.engine import start_campaign
from mailer.errors import MailerError, PolicyRefusal
from mailer.scheduling import policy
from mailer.scheduling.jobs import campaign_job_id, remove_job_row
from mailer.settings import Settings
from mailer.storage.base import utcnow
from mailer.storage.db import Database

#: Serialises campaign starts within the leading process (job threads and the tick).
start_lock = threading.Lock()


def start_scheduled_campaign(
    db: Database, settings: Settings, campaign_id: int, *, now: datetime | None = None,
) -> str:
    """Start a scheduled campaign if it is (still) due and allowed; returns what happened:
    ``started``, ``missed`` (later than MAILER_MISFIRE_GRACE, or refused / failed to start at
    send time: the reason is recorded), ``not-due``, ``not-scheduled`` or ``unavailable``
    (no delivery engine in this installation; left scheduled).

    Must run under ``start_lock`` when several threads may call it.
    """
    now = now or utcnow()
    with db.session() as session:
        campaign = get_campaign(session, campaign_id, for_update=True)
        if campaign.status != S.SCHEDULED:
            return "not-scheduled"
        due = campaign.scheduled_at or now
        if due > now + timedelta(seconds=1):
            return "not-due"
        if (now - due).total_seconds() > settings.misfire_grace:
            mark_missed(session, campaign, by="scheduler", reason=_missed_reason(
                due, now, settings))
            return "missed"
        try:
            policy.check_send_allowed(campaign, settings, now)
        except PolicyRefusal as refusal:
            mark_missed(session, campaign, by="scheduler",
                        reason=f"not sent at {policy.format_local(now, settings)}: {refusal}")
            return "missed"
    return _hand_to_delivery(db, settings, campaign_id)


def _missed_reason(due: datetime, now: datetime, settings: Settings) -> str:
    hours = settings.misfire_grace / 3600
    return (f"missed: scheduled for {policy.format_local(due, settings)} but no scheduler ran "
            f"until {policy.format_local(now, settings)}, more than the {hours:g} h allowed "
            "late (MAILER_MISFIRE_GRACE); reschedule it to send")


def _hand_to_delivery(db: Database, settings: Settings, campaign_id: int) -> str:
    try:
        start_campaign(db, settings, campaign_id)
    except MailerError as exc:  # e.g. its segment was deleted, or it was cancelled meanwhile
        with db.session() as session:
            campaign = get_campaign(session, campaign_id, for_update=True)
            if campaign.status != S.SCHEDULED:
                return "not-scheduled"
            mark_missed(session, campaign, by="scheduler",
                        reason=f"could not start: {exc}")
        return "missed"
    return "started"


def start_now(
    db: Database, settings: Settings, campaign_id: int, *, by: str | None = None,
    override_blackout: bool = False, reason: str | None = None,
) -> None:
    """Start an approved (or scheduled, or missed) campaign at once: what
    ``campaigns schedule --now`` does. The campaign never passes through ``scheduled``, so a
    running scheduler cannot race to start it too; a refusal leaves it as it was.

    Raises PolicyRefusal subclasses (approval, quiet hours, blackout), InvalidTransition,
    InvalidInput (override without a reason), QueryError (its audience cannot be drawn).
    """

    now = utcnow()
    with db.session() as session:
        campaign = get_campaign(session, campaign_id, for_update=True)
        ready_to_send(session, campaign, at=now, settings=settings, by=by,
                      override_blackout=override_blackout, reason=reason, verb="started")
        policy.check_send_allowed(campaign, settings, now)
        remove_job_row(session, campaign_job_id(campaign_id))
        if campaign.status == S.MISSED:
            approve_missed(session, campaign, by=by)
    with start_lock:
        start_campaign(db, settings, campaign_id, by=by)


