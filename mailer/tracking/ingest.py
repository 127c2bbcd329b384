"""Store provider events once and derive everything else from them.

``ingest_events(session, raw_events, settings)`` is the one path every event takes (the
webhook, ``mailer events import``, tests, the bench):

1. normalize each object into a ``DeliveryEvent`` (``mailer.tracking.events``);
2. match it to its ``deliveries`` row: our custom_args ``delivery_id`` first (accepted only
   when the address agrees, since one SendGrid account may serve other systems too), else
   the ``sg_message_id`` prefix before the first ``.`` against
   ``deliveries.provider_message_id`` together with the address (one API request, one
   message id, up to 1,000 recipients);
3. insert it with ``INSERT … ON CONFLICT (provider_event_id) DO NOTHING RETURNING`` so a
   replayed event is recognised by the database itself, even when two posts race;
4. for the events that were new, advance delivery status monotonically in SQL (see
   ``STATUS_RANK``), apply suppressions and run the reputation guard.

All of it happens in the caller's transaction: either the whole batch counts or none of it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, String, and_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailer.campaigns.models import Delivery
from mailer.campaigns.models import DeliveryStatus as DS
from mailer.settings import Settings
from mailer.storage.base import UTCDateTime, utcnow
from mailer.tracking import events as ev
from mailer.tracking.logs import log_event
from mailer.tracking.models import DeliveryEventRow
from subscribers.models import Subscriber

#: Delivery states ordered by how much we know. An event moves a delivery only upwards, so
#: a late ``processed`` never overwrites ``delivered`` and a bounce after ``delivered`` wins.
#: ``skipped`` rows were never handed off, so no provider event may move them.
STATUS_RANK: dict[str, int] = {
    DS.PENDING: 0, DS.SENDING: 1, DS.IN_DOUBT: 1, DS.FAILED: 1, DS.ACCEPTED: 2,
    DS.DEFERRED: 3, DS.DELIVERED: 4, DS.DROPPED: 5, DS.BOUNCED: 6, DS.SKIPPED: 9,
}
#: Event type -> the delivery status it proves. Opens, clicks, complaints and unsubscribes
#: can only come from a message that arrived, so they imply ``delivered``.
EVENT_STATUS: dict[str, str] = {
    ev.QUEUED: DS.ACCEPTED, ev.DEFERRED: DS.DEFERRED, ev.DELIVERED: DS.DELIVERED,
    ev.OPENED: DS.DELIVERED, ev.CLICKED: DS.DELIVERED, ev.COMPLAINED: DS.DELIVERED,
    ev.UNSUBSCRIBED: DS.DELIVERED, ev.DROPPED: DS.DROPPED, ev.BOUNCED: DS.BOUNCED,
    ev.BLOCKED: DS.BOUNCED,
}
#: Event type -> the delivery timestamp column it sets (the earliest such event wins).
EVENT_TIME_COLUMN: dict[str, str] = {
    ev.QUEUED: "sent_at", ev.DELIVERED: "delivered_at", ev.OPENED: "opened_at",
    ev.CLICKED: "clicked_at", ev.BOUNCED: "bounced_at", ev.BLOCKED: "bounced_at",
    ev.COMPLAINED: "complained_at", ev.UNSUBSCRIBED: "unsubscribed_at",
}
TIME_COLUMNS = ("sent_at", "delivered_at", "opened_at", "clicked_at", "bounced_at",
                "complained_at", "unsubscribed_at")
_CHUNK = 500  # bound parameters per IN (...) lookup


@dataclass(frozen=True, slots=True)
class DeliveryRef:
    id: int
    campaign_id: int
    subscriber_id: int | None
    email: str


@dataclass(slots=True)
class IngestSummary:
    """What one call did. ``stored + duplicates + invalid == received``."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    invalid: int = 0
    matched: int = 0
    unmatched: int = 0
    by_type: Counter = field(default_factory=Counter)
    suppressed: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    paused_campaigns: list[int] = field(default_factory=list)

    def add(self, other: IngestSummary) -> None:
        """Fold another batch's summary into this one (large imports run in batches)."""
        for name in ("received", "stored", "duplicates", "invalid", "matched", "unmatched"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.by_type.update(other.by_type)
        self.suppressed += other.suppressed
        self.warnings += other.warnings
        self.paused_campaigns += [c for c in other.paused_campaigns
                                  if c not in self.paused_campaigns]

    def to_dict(self) -> dict[str, Any]:
        return {
            "received": self.received, "stored": self.stored, "duplicates": self.duplicates,
            "invalid": self.invalid, "matched": self.matched, "unmatched": self.unmatched,
            "by_type": dict(sorted(self.by_type.items())), "suppressed": self.suppressed,
            "warnings": self.warnings, "paused_campaigns": self.paused_campaigns,
        }


@dataclass(slots=True)
class StoredEvent:
    """A newly stored event with what it was matched to."""

    event: ev.DeliveryEvent
    delivery: DeliveryRef | None
    subscriber_id: int | None


def ingest_events(
    session: Session, raw_events: Sequence[Any], settings: Settings
) -> IngestSummary:
    """Store ``raw_events`` (SendGrid webhook objects) and apply their consequences.

    Must run inside a unit of work (``with db.session() as session``); a database failure
    raises and the caller's transaction rolls back, so a retried post starts clean.
    Non-object entries are counted as ``invalid`` and skipped; duplicates change nothing.
    """
    from mailer.tracking.guard import check_complaint_rates
    from mailer.tracking.suppression import apply_suppressions

    summary = IngestSummary(received=len(raw_events))
    events = _normalize(raw_events, summary)
    if not events:
        return summary
    refs = match_deliveries(session, events)
    subscribers = _subscribers_by_email(session, [e for e in events if e.event_id not in refs])
    inserted = _insert(session, events, refs, subscribers)
    stored = [StoredEvent(e, refs.get(e.event_id), _subscriber_of(e, refs, subscribers))
              for e in events if e.event_id in inserted]
    summary.stored = len(stored)
    summary.duplicates = len(raw_events) - summary.invalid - len(stored)
    for item in stored:
        summary.by_type[item.event.type] += 1
        if item.delivery is not None:
            summary.matched += 1
    summary.unmatched = summary.stored - summary.matched
    _advance_deliveries(session, [s for s in stored if s.delivery is not None])
    summary.suppressed = apply_suppressions(session, stored, settings)
    warnings, paused = check_complaint_rates(
        session, {s.delivery.campaign_id for s in stored
                  if s.delivery is not None and s.event.type == ev.COMPLAINED})
    summary.warnings, summary.paused_campaigns = warnings, paused
    _log(stored)
    return summary


def _normalize(raw_events: Iterable[Any], summary: IngestSummary) -> list[ev.DeliveryEvent]:
    """Normalize, dropping non-objects and repeats of one event id inside the same batch."""
    now = utcnow()
    seen: set[str] = set()
    result: list[ev.DeliveryEvent] = []
    for raw in raw_events:
        if not isinstance(raw, dict):
            summary.invalid += 1
            continue
        event = ev.from_sendgrid(raw, received_at=now)
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        result.append(event)
    return result


def match_deliveries(
    session: Session, events: Sequence[ev.DeliveryEvent]
) -> dict[str, DeliveryRef]:
    """Map event id -> the delivery it is about (events that match nothing are absent)."""
    by_id = _load_refs(session, Delivery.id, {e.delivery_id for e in events if e.delivery_id})
    refs: dict[str, DeliveryRef] = {}
    for event in events:
        ref = by_id.get(event.delivery_id) if event.delivery_id else None
        if ref is not None and _same_person(ref, event):
            refs[event.event_id] = ref
    rest = [e for e in events if e.event_id not in refs and e.message_id_prefix]
    if rest:
        rows = _load_refs_multi(session, {e.message_id_prefix for e in rest})
        for event in rest:
            candidates = rows.get(event.message_id_prefix, [])
            chosen = [r for r in candidates if event.email and r.email.lower() == event.email]
            if not chosen and len(candidates) == 1 and not event.email:
                chosen = candidates
            if len(chosen) == 1:
                refs[event.event_id] = chosen[0]
    return refs


def _same_person(ref: DeliveryRef, event: ev.DeliveryEvent) -> bool:
    if event.campaign_id is not None and event.campaign_id != ref.campaign_id:
        return False
    return event.email is None or ref.email.lower() == event.email


def _ref_columns():
    return (Delivery.id, Delivery.campaign_id, Delivery.subscriber_id, Delivery.email,
            Delivery.provider_message_id)


def _load_refs(session: Session, column, keys: set) -> dict[Any, DeliveryRef]:
    found: dict[Any, DeliveryRef] = {}
    for chunk in _chunks(sorted(keys)):
        for row in session.execute(select(*_ref_columns()).where(column.in_(chunk))):
            found[row.id] = DeliveryRef(row.id, row.campaign_id, row.subscriber_id, row.email)
    return found


def _load_refs_multi(session: Session, prefixes: set[str]) -> dict[str, list[DeliveryRef]]:
    found: dict[str, list[DeliveryRef]] = {}
    for chunk in _chunks(sorted(prefixes)):
        stmt = select(*_ref_columns()).where(Delivery.provider_message_id.in_(chunk))
        for row in session.execute(stmt):
            ref = DeliveryRef(row.id, row.campaign_id, row.subscriber_id, row.email)
            found.setdefault(row.provider_message_id, []).append(ref)
    return found


def _subscribers_by_email(
    session: Session, events: Sequence[ev.DeliveryEvent]
) -> dict[str, int]:
    """Subscriber ids for events no delivery claimed (e.g. a test send, a lost custom arg)."""
    emails = {e.email for e in events if e.email}
    found: dict[str, int] = {}
    for chunk in _chunks(sorted(emails)):
        stmt = select(Subscriber.id, Subscriber.email).where(
            func.lower(Subscriber.email).in_(chunk))
        for row in session.execute(stmt):
            found[row.email.lower()] = row.id
    return found


def _subscriber_of(event, refs, subscribers) -> int | None:
    ref = refs.get(event.event_id)
    if ref is not None:
        return ref.subscriber_id
    return subscribers.get(event.email) if event.email else None


def _insert(session, events, refs, subscribers) -> set[str]:
    """Insert every event, skipping ids already stored; returns the ids that were new."""
    now = utcnow()
    rows = []
    for event in events:
        ref = refs.get(event.event_id)
        rows.append({
            "provider_event_id": event.event_id,
            "delivery_id": ref.id if ref else None,
            "campaign_id": ref.campaign_id if ref else None,
            "subscriber_id": _subscriber_of(event, refs, subscribers),
            "provider_message_id": event.provider_message_id,
            "email": event.email[:320] if event.email else None,
            "type": event.type,
            "reason": event.reason,
            "occurred_at": event.occurred_at,
            "received_at": now,
            "raw": event.raw,
        })
    table = DeliveryEventRow.__table__
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = (dialect.insert(table)
            .on_conflict_do_nothing(index_elements=["provider_event_id"])
            .returning(table.c.provider_event_id))
    return set(session.scalars(stmt, rows))


def _advance_deliveries(session: Session, stored: Sequence[StoredEvent]) -> None:
    """One UPDATE per touched delivery, all in one executemany; every change is computed
    against the row's current value in SQL, so concurrent posts cannot undo each other."""
    if not stored:
        return
    params: dict[int, dict[str, Any]] = {}
    now = utcnow()
    for item in stored:
        event, delivery_id = item.event, item.delivery.id
        p = params.setdefault(delivery_id, {"b_id": delivery_id, "b_rank": -1,
                                            "b_status": DS.PENDING, "b_now": now,
                                            **{f"b_{c}": None for c in TIME_COLUMNS}})
        status = EVENT_STATUS.get(event.type)
        if status is not None and STATUS_RANK[status] > p["b_rank"]:
            p["b_rank"], p["b_status"] = STATUS_RANK[status], status
        column = EVENT_TIME_COLUMN.get(event.type)
        if column is not None:
            current = p[f"b_{column}"]
            p[f"b_{column}"] = event.occurred_at if current is None else min(current,
                                                                              event.occurred_at)
    session.execute(_advance_statement(), list(params.values()))


def _advance_statement():
    table = Delivery.__table__
    rank = case(STATUS_RANK, value=table.c.status, else_=0)
    values: dict[str, Any] = {
        "status": case((rank < bindparam("b_rank", type_=Integer),
                        bindparam("b_status", type_=String)), else_=table.c.status),
        "updated_at": bindparam("b_now", type_=UTCDateTime()),
    }
    for column in TIME_COLUMNS:
        values[column] = _earliest(table.c[column], f"b_{column}")
    return update(table).where(table.c.id == bindparam("b_id", type_=Integer)).values(values)


def _earliest(column, name: str):
    """SQL for "the earlier of the stored time and this batch's time" (NULL means none)."""
    new = bindparam(name, type_=UTCDateTime())
    return case((and_(new.is_not(None), or_(column.is_(None), column > new)), new),
                else_=column)


def _chunks(items: list, size: int = _CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _log(stored: Sequence[StoredEvent]) -> None:
    for item in stored:
        event, ref = item.event, item.delivery
        log_event("provider_event", type=event.type, event_id=event.event_id,
                  campaign=ref.campaign_id if ref else None,
                  delivery=ref.id if ref else None, outcome=event.type,
                  reason=event.reason)

