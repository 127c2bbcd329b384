"""Automatic suppression: provider evidence that a person must not be mailed again.

| new event                                   | subscriber becomes |
|---------------------------------------------|--------------------|
| hard bounce (``bounce``, type ``bounce``)   | ``bounced``        |
| ``soft_bounce_threshold`` blocks since the last delivered message | ``bounced`` |
| spam report                                 | ``complained``     |
| unsubscribe / group unsubscribe             | ``unsubscribed``   |
| ``dropped``, reason "Bounced Address" or "Invalid" | ``bounced``  |
| ``dropped``, reason "Spam Reporting Address" | ``complained``    |
| ``dropped``, reason "Unsubscribed Address"  | ``unsubscribed``   |

(The ``dropped`` rows keep our list in step with SendGrid's own suppression lists.)

Deferrals are not counted: SendGrid retries them itself for up to 72 hours and reports a
``bounce``, ``blocked`` or ``dropped`` when it gives up.

Each change goes through ``subscribers.service`` (``set_status`` with the cause, plus the
address on the suppression list), inside the ingest transaction. The delivery engine checks
subscriber status before every claim, so the change holds for the very next batch of any
campaign in progress. A person already unsubscribed or bounced keeps that status, except that
a spam report is always recorded (complaints weigh on the sending domain and are reported).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from mailer.delivery.records import Delivery
from mailer.errors import InvalidInput
from mailer.settings import Settings
from mailer.tracking import events as ev
from mailer.tracking.logs import log_event
from mailer.tracking.models import DeliveryEventRow
from subscribers import service as subscribers_service
from subscribers.addresses import email_hash, normalize_email
from subscribers.models import (
    BOUNCED,
    COMPLAINED,
    SUPPRESSED_STATUSES,
    UNSUBSCRIBED,
    Subscriber,
)

if TYPE_CHECKING:
    from mailer.tracking.ingest import StoredEvent

#: SendGrid ``dropped`` reasons that mirror its own suppression lists.
DROP_REASON_STATUS: dict[str, str] = {
    "bounced address": BOUNCED,
    "invalid": BOUNCED,
    "spam reporting address": COMPLAINED,
    "unsubscribed address": UNSUBSCRIBED,
}
_EVENT_STATUS = {ev.BOUNCED: BOUNCED, ev.COMPLAINED: COMPLAINED, ev.UNSUBSCRIBED: UNSUBSCRIBED}


def status_for(event: ev.DeliveryEvent) -> str | None:
    """The subscriber status one event demands on its own (soft bounces need a count)."""
    if event.type == ev.DROPPED:
        return DROP_REASON_STATUS.get((event.reason or "").strip().lower())
    return _EVENT_STATUS.get(event.type)


def apply_suppressions(
    session: Session, stored: Sequence[StoredEvent], settings: Settings
) -> list[dict[str, Any]]:
    """Apply the table above to newly stored events; returns one dict per status change:
    ``{"subscriber_id", "email", "status", "cause"}``. Unknown addresses that hard-bounce,
    complain or unsubscribe are still put on the suppression list, so no import adds them.

    Set-based: the people concerned are read in one query, their status changes are written
    in one flush and the addresses go on the suppression list in one lookup and one insert,
    however many of a post's events call for it."""
    candidates = sorted((s for s in stored if s.event.type in _MAY_SUPPRESS),
                        key=lambda s: s.event.occurred_at)
    if not candidates:
        return []
    people = _load_subscribers(session, {s.subscriber_id for s in candidates if s.subscriber_id})
    addresses: dict[str, str] = {}  # email hash -> reason, for the suppression list
    changes: list[dict[str, Any]] = []
    for item in candidates:
        target = status_for(item.event)
        if target is None and item.event.type == ev.BLOCKED:
            target = _soft_bounce_target(session, item, settings)
        if target is None:
            continue
        change = _suppress(session, item, people.get(item.subscriber_id), target, addresses)
        if change is not None:
            changes.append(change)
    subscribers_service.suppress_hashes(session, addresses)  # flushes the changes too
    return changes


#: The event types that can call for a suppression (the rest are skipped at once).
_MAY_SUPPRESS = frozenset({ev.BOUNCED, ev.BLOCKED, ev.COMPLAINED, ev.UNSUBSCRIBED, ev.DROPPED})


def _load_subscribers(session: Session, ids: set[int]) -> dict[int, Subscriber]:
    """These people by id, read in one query."""
    if not ids:
        return {}
    rows = session.scalars(select(Subscriber).where(Subscriber.id.in_(sorted(ids))))
    return {row.id: row for row in rows}


def _soft_bounce_target(session: Session, item: StoredEvent, settings: Settings) -> str | None:
    """``bounced`` once the person has ``soft_bounce_threshold`` blocks since their last
    delivered message (counted over every campaign, this event included)."""
    if item.subscriber_id is None or settings.soft_bounce_threshold <= 0:
        return None
    rows = DeliveryEventRow
    last_delivered = session.scalar(
        select(func.max(rows.occurred_at)).where(rows.subscriber_id == item.subscriber_id,
                                                 rows.type == ev.DELIVERED))
    stmt = select(func.count()).where(rows.subscriber_id == item.subscriber_id,
                                      rows.type == ev.BLOCKED)
    if last_delivered is not None:
        stmt = stmt.where(rows.occurred_at > last_delivered)
    blocks = session.scalar(stmt) or 0
    return BOUNCED if blocks >= settings.soft_bounce_threshold else None


def _suppress(session: Session, item: StoredEvent, subscriber: Subscriber | None, target: str,
              addresses: dict[str, str]) -> dict[str, Any] | None:
    """Change ``subscriber``'s status for ``target`` (unflushed) and note the address in
    ``addresses`` for the suppression list; returns the change, or None when nothing
    changed."""
    event = item.event
    if subscriber is None:
        _note_address(addresses, event.email, target)
        return None
    _note_address(addresses, subscriber.email, target)
    if subscriber.status == target or (
            subscriber.status in SUPPRESSED_STATUSES and target != COMPLAINED):
        return None
    cause = describe_cause(item, target)
    if not subscribers_service.set_status(session, subscriber, target, cause=cause,
                                          flush=False):
        return None
    log_event("subscriber_suppressed", subscriber=subscriber.id, outcome=target,
              event_id=event.event_id, delivery=item.delivery.id if item.delivery else None)
    return {"subscriber_id": subscriber.id, "email": subscriber.email, "status": target,
            "cause": cause}


def _note_address(addresses: dict[str, str], email: str | None, target: str) -> None:
    """Note ``email`` for the suppression list (the first reason noted for it stays)."""
    if not email:
        return
    try:
        digest = email_hash(normalize_email(email))
    except InvalidInput:  # an address the provider reported but that is not valid syntax
        return
    addresses.setdefault(digest, target)


def describe_cause(item: StoredEvent, target: str) -> str:
    """The one-line cause kept in the subscriber's status history."""
    event = item.event
    what = {
        ev.BOUNCED: "hard bounce", ev.BLOCKED: "repeated soft bounces (blocked)",
        ev.COMPLAINED: "spam complaint", ev.UNSUBSCRIBED: "unsubscribed at the provider",
        ev.DROPPED: "dropped by the provider",
    }.get(event.type, event.type)
    head = f"sendgrid: {what}" + (f" ({event.reason[:300]})" if event.reason else "")
    where = [f"event {event.event_id}"]
    if item.delivery is not None:
        where[:0] = [f"campaign {item.delivery.campaign_id}", f"delivery {item.delivery.id}"]
    return f"{head}; {', '.join(where)}"


def erase_events_for(session: Session, *, subscriber_id: int | None = None,
                     email: str | None = None) -> int:
    """Scrub a person from the event log (``subscribers.service.forget`` calls this): their
    address, the raw provider payload and the reason text go; the event type and time stay
    so campaign reports still add up. Matches events by subscriber, by their deliveries and
    by address. Returns the number of rows scrubbed."""

    conditions = []
    if subscriber_id is not None:
        conditions.append(DeliveryEventRow.subscriber_id == subscriber_id)
        conditions.append(DeliveryEventRow.delivery_id.in_(
            select(Delivery.id).where(Delivery.subscriber_id == subscriber_id)))
    if email:
        conditions.append(DeliveryEventRow.email == email.strip().lower())
    if not conditions:
        return 0
    result = session.execute(
        update(DeliveryEventRow).where(or_(*conditions))
        .values(email=None, raw={}, subscriber_id=None, reason=None))
    return result.rowcount or 0
