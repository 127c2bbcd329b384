"""The delivery engine's public interface.

    start_campaign(db, settings, campaign_id) -> int      draw the audience, approved|scheduled
                                                            -> sending; returns recipients
    send_campaign(db, settings, campaign_id, ...) -> SendSummary
                                                            the foreground send: start if
                                                            needed, then send until every row
                                                            is settled (-> sent) or the
                                                            campaign is paused/cancelled
    status_counts(session, campaign_id) -> dict             the counts `campaigns status` shows

Workers and fan-out helpers take their turns through ``pipeline.send_share``; all three modes
run the same batch pipeline (``pipeline.run_batches``).

Exactly once: each row is committed as ``sending`` (batch, attempt, worker, lease) before the
transport is called and as ``accepted``/``failed`` after; rows a crash leaves behind are
settled by ``recovery`` from evidence, never by guessing early.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.campaigns.lifecycle import start_sending
from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as CS
from mailer.campaigns.service import get_campaign
from mailer.delivery import fanout, records, recovery
from mailer.delivery.audience import draw_audience
from mailer.delivery.pipeline import prepare, run_batches
from mailer.delivery.records import Delivery
from mailer.delivery.records import DeliveryStatus as DS
from mailer.delivery.sender import RunStats
from mailer.errors import InvalidTransition
from mailer.scheduling.policy import check_send_allowed
from mailer.settings import Settings
from mailer.storage import outage
from mailer.storage.db import Database
from mailer.transports import get_transport
from mailer.transports.base import Transport

C = Delivery.__table__.c
#: Delivery statuses that mean "the provider took it" (later events refine them).


@dataclass
class SendSummary:
    campaign_id: int
    status: str
    reason: str | None
    recipients: int
    accepted: int
    failed: int
    skipped: int
    in_doubt: int
    pending: int
    sent_this_run: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.sent_this_run / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rate"] = round(self.rate, 1)
        data["seconds"] = round(self.seconds, 3)
        return data


def start_campaign(db: Database, settings: Settings, campaign_id: int, *,
                   by: str | None = None) -> int:
    """Draw the audience and move the campaign to ``sending``; returns its recipients.

    Idempotent for a campaign already sending. Raises InvalidTransition for any state other
    than approved, scheduled or sending; PolicyRefusal when approval, quiet hours or the
    election blackout forbid starting now; QueryError when its audience cannot be evaluated.
    """
    with db.session() as session:
        campaign = get_campaign(session, campaign_id, for_update=True)
        if campaign.status == CS.SENDING:
            return campaign.recipients or 0
        if campaign.status not in (CS.APPROVED, CS.SCHEDULED):
            raise InvalidTransition(_cannot_start(campaign))
        _check_policy(campaign, settings)
        campaign.recipients = draw_audience(session, campaign)
        start_sending(session, campaign, by=by or "delivery engine",
                      reason=f"sending to {campaign.recipients} recipients")
        return campaign.recipients


def _cannot_start(campaign: Campaign) -> str:
    hint = {CS.DRAFT: "approve it first", CS.PAUSED: f"resume it (mailer campaigns resume "
            f"{campaign.id})", CS.SENT: "it has already been sent",
            CS.CANCELLED: "it was cancelled"}.get(campaign.status, "")
    return f"campaign {campaign.id} is {campaign.status}; it cannot be sent" + (
        f": {hint}" if hint else "")


def _check_policy(campaign: Campaign, settings: Settings) -> None:
    check_send_allowed(campaign, settings)


def send_campaign(db: Database, settings: Settings, campaign_id: int, *,
                  transport: Transport | None = None,
                  progress: Callable[[RunStats], None] | None = None,
                  stop: threading.Event | None = None, poll_interval: float = 1.0,
                  processes: int | None = None) -> SendSummary:
    """The foreground send (``campaigns send``): start the campaign if needed, then send
    until every row is settled (the campaign becomes ``sent``), it is paused or cancelled,
    or ``stop`` is set. Resumes a crashed send: rows a dead sender left are resolved first
    (see ``recovery``).

    A large send with its own transport is spread over ``processes`` processes (default: as
    ``MAILER_SEND_PROCESSES`` and the campaign's size allow; see ``fanout``).

    Raises InvalidTransition when the campaign is not approved, scheduled or sending.
    """
    started = time.monotonic()
    start_campaign(db, settings, campaign_id)
    worker = recovery.new_worker_name()
    stop = stop or threading.Event()
    helpers: fanout.Helpers | None = None
    sender = None
    report = progress
    own_transport = None
    what = f"campaign {campaign_id}"
    try:
        outage.ride_out(lambda: recovery.recover(db, settings, campaign_id), settings,
                        stop=stop, what=what)
        prepared = outage.ride_out(lambda: prepare(db, settings, campaign_id), settings,
                                   stop=stop, what=what)
        count = 1 if transport is not None or processes == 1 else (
            processes or fanout.process_count(settings, outage.ride_out(
                lambda: _pending(db, campaign_id), settings, stop=stop, what=what)))
        if count > 1:
            settings = fanout.share(settings, count)
            helpers = fanout.Helpers(settings, db.engine.url.render_as_string(
                hide_password=False), campaign_id, count - 1)
            progress = _with_helpers(progress, helpers)
            poll_interval = min(poll_interval, 0.2)  # notice the helpers' last rows settle
        own_transport = None if transport is not None else get_transport(settings)
        sender = run_batches(db, settings, prepared, transport=transport or own_transport,
                             worker=worker, stop=stop, progress=progress,
                             wait_for_others=True, poll_interval=poll_interval)
    finally:
        if helpers is not None:
            if stop.is_set() or sender is None or sender.halt.is_set():
                helpers.stop()  # interrupted, paused or failed: they finish their batches
            stats = sender.stats if sender is not None else None
            _add_helpers(stats, helpers.finish(settings.lease_seconds))
            if report is not None and stats is not None:
                report(stats)  # the helpers' last batches
        recovery.forget_worker(worker)
        if own_transport is not None:
            own_transport.close()
    seconds = time.monotonic() - started
    return outage.ride_out(lambda: summarize(db, campaign_id, sender.stats, seconds,
                                             sender.reason), settings, stop=stop, what=what)


def _pending(db: Database, campaign_id: int) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Delivery.__table__).where(
            C.campaign_id == campaign_id, C.status == DS.PENDING)) or 0


def _with_helpers(progress, helpers: fanout.Helpers):
    """The caller's progress callback, counting what the helper processes did too."""
    def report(stats: RunStats) -> None:
        totals = helpers.totals()  # also drains their reports when nobody watches
        if progress is not None:
            combined = RunStats(*(a + b for a, b in zip(
                (stats.accepted, stats.failed, stats.skipped, stats.in_doubt), totals,
                strict=True)), requests=stats.requests, started=stats.started,
                note=stats.note)
            progress(combined)
    return report


def _add_helpers(stats: RunStats | None, totals: tuple[int, int, int, int]) -> None:
    if stats is not None:
        stats.accepted += totals[0]
        stats.failed += totals[1]
        stats.skipped += totals[2]
        stats.in_doubt += totals[3]


def summarize(db: Database, campaign_id: int, stats: RunStats, seconds: float,
              reason: str | None) -> SendSummary:
    with db.session() as session:
        campaign = get_campaign(session, campaign_id)
        counts = status_counts(session, campaign_id)
    return SendSummary(
        campaign_id=campaign_id, status=campaign.status,
        reason=campaign.status_reason if campaign.status != CS.SENDING else reason,
        recipients=counts["recipients"], accepted=counts["accepted"],
        failed=counts["failed"], skipped=counts["skipped"], in_doubt=counts["in_doubt"],
        pending=counts["pending"], sent_this_run=stats.accepted, seconds=seconds)


# -- counts -----------------------------------------------------------------------------------
def status_counts(session: Session, campaign_id: int) -> dict[str, int]:
    """The campaign's counts (``records.status_counts``) seen from the sender:
    ``accepted`` counts every row the provider took, whatever happened to it after, and
    ``pending`` includes the rows being sent right now."""
    counts = records.status_counts(session, campaign_id)
    groups = records.grouped(counts)
    return {**counts, "accepted": groups["handed_off"], "pending": groups["unsettled"]}


def in_doubt_policy(settings: Settings) -> dict[str, Any]:
    """How in-doubt rows are settled here (shown by `campaigns status`)."""
    evidence = ("provider events (signed Event Webhook)" if settings.transport == "sendgrid"
                and settings.sendgrid_webhook_public_key is not None
                else "the outbox file" if settings.transport == "outbox" else "none")
    return {"policy": settings.in_doubt_policy, "grace_seconds": settings.in_doubt_grace,
            "evidence": evidence}
