"""What a send says about itself: one JSON log line per recorded hand-off, and the progress
line while a sender waits on rows it cannot settle itself."""

from __future__ import annotations

from mailer.delivery import recovery
from mailer.delivery.handoff import Outcome
from mailer.delivery.records import DeliveryStatus as DS
from mailer.settings import Settings
from mailer.tracking.logs import log_event


def log_handoff(campaign_id: int, worker: str, out: Outcome) -> None:
    """One structured JSON log line per recorded hand-off (see mailer.tracking.logs)."""

    outcome = ("accepted" if out.all_accepted or (out.results and not out.failed
                                                  and not out.in_doubt) else
               "paused" if out.pause_reason else "in_doubt" if out.in_doubt else
               "partial" if out.results else "released")
    log_event("handoff", campaign=campaign_id, batch=out.claim.batch_id, worker=worker,
              recipients=len(out.claim.rows), accepted=out.accepted, failed=out.failed,
              in_doubt=len(out.in_doubt), outcome=outcome, message_id=out.message_id,
              reason=out.pause_reason or out.release_reason or out.in_doubt_reason or None)


def waiting_reason(left: dict, res: recovery.Resolution, settings: Settings) -> str:
    """The progress line while this sender waits on rows it cannot settle itself; times in
    the office zone, like every time the office reads."""
    parts = []
    if left.get(DS.SENDING):
        parts.append(f"{left[DS.SENDING]} being sent by other workers")
    if res.waiting:
        when = (res.next_deadline.astimezone(settings.zone).strftime("%H:%M:%S %Z")
                if res.next_deadline else "soon")
        parts.append(f"{res.waiting} in doubt, waiting for provider evidence until {when}")
    if left.get(DS.PENDING):
        parts.append(f"{left[DS.PENDING]} pending, leased elsewhere")
    return "waiting: " + "; ".join(parts) if parts else "waiting"
