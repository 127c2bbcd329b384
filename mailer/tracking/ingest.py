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
4. for the events that were new, advance their deliveries monotonically
   (``mailer.tracking.advance``), apply suppressions and run the reputation guard.

All of it happens in the caller's transaction: either the whole batch counts or none of it.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from mailer.settings import Settings
from mailer.storage.base import utcnow
from mailer.tracking import advance
from mailer.tracking import events as ev
from mailer.tracking.bulk import insert_new
from mailer.tracking.guard import check_complaint_rates
from mailer.tracking.logs import log_event
from mailer.tracking.logs import logger as events_logger
from mailer.tracking.models import DeliveryEventRow
from mailer.tracking.suppression import apply_suppressions
from subscribers.models import Subscriber

_CHUNK = 500  # bound parameters per IN (...) lookup (SQLite)


class DeliveryRef(NamedTuple):
    """The columns of a delivery that matching and ``advance.plan`` need, as the driver
    returns them (a tuple: thousands per post)."""

    id: int
    campaign_id: int
    subscriber_id: int | None
    email: str
    status: str
    sent_at: Any
    delivered_at: Any
    opened_at: Any
    clicked_at: Any
    bounced_at: Any
    complained_at: Any
    unsubscribed_at: Any


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
    session: Session, raw_events: Sequence[Any], settings: Settings, *,
    raw_texts: Sequence[str] | None = None,
) -> IngestSummary:
    """Store ``raw_events`` (SendGrid webhook objects) and apply their consequences.

    ``raw_texts``, when given, holds each event's JSON text as posted, stored as is;
    otherwise the objects are serialized. Must run inside a unit of work (``with
    db.session() as session``); a database failure raises and the caller's transaction
    rolls back, so a retried post starts clean. Non-object entries are counted as
    ``invalid`` and skipped; duplicates change nothing.
    """

    summary = IngestSummary(received=len(raw_events))
    events = _normalize(raw_events, raw_texts, summary)
    if not events:
        return summary
    candidates = _match(session, events)
    inserted = _insert(session, candidates)  # the event ids that were new
    stored = [c for c in candidates if c.event.event_id in inserted]
    _count(summary, stored)
    matched = [s for s in stored if s.delivery is not None]
    advance.apply(session, advance.plan([(s.delivery, s.event) for s in matched],
                                        advance.stored_form(session)))
    summary.suppressed = apply_suppressions(session, stored, settings)
    summary.warnings, summary.paused_campaigns = check_complaint_rates(
        session, {s.delivery.campaign_id for s in matched if s.event.type == ev.COMPLAINED})
    _log(stored)
    return summary


def _match(session: Session, events: Sequence[ev.DeliveryEvent]) -> list[StoredEvent]:
    """Each event with its delivery (if any) and its subscriber (from the delivery, else by
    address)."""
    refs = match_deliveries(session, events)
    by_email = _subscribers_by_email(session, [e for e in events if e.event_id not in refs])
    candidates = []
    for event in events:
        ref = refs.get(event.event_id)
        subscriber_id = ref.subscriber_id if ref is not None else by_email.get(event.email)
        candidates.append(StoredEvent(event, ref, subscriber_id))
    return candidates


def _count(summary: IngestSummary, stored: Sequence[StoredEvent]) -> None:
    summary.stored = len(stored)
    summary.duplicates = summary.received - summary.invalid - len(stored)
    for item in stored:
        summary.by_type[item.event.type] += 1
        if item.delivery is not None:
            summary.matched += 1
    summary.unmatched = summary.stored - summary.matched


def _normalize(raw_events: Sequence[Any], raw_texts: Sequence[str] | None,
               summary: IngestSummary) -> list[ev.DeliveryEvent]:
    """Normalize, dropping non-objects and repeats of one event id inside the same batch."""
    if raw_texts is not None and len(raw_texts) != len(raw_events):
        raise ValueError("raw_texts must hold one text per event")
    now = utcnow()
    seen: set[str] = set()
    result: list[ev.DeliveryEvent] = []
    for index, raw in enumerate(raw_events):
        if not isinstance(raw, dict):
            summary.invalid += 1
            continue
        event = ev.from_sendgrid(raw, received_at=now,
                                 raw_json=raw_texts[index] if raw_texts else None)
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        result.append(event)
    return result


def match_deliveries(
    session: Session, events: Sequence[ev.DeliveryEvent]
) -> dict[str, DeliveryRef]:
    """Map event id -> the delivery it is about (events that match nothing are absent)."""
    by_id = _refs_by_id(session, {e.delivery_id for e in events if e.delivery_id})
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


def _refs_by_id(session: Session, keys: set[int]) -> dict[int, DeliveryRef]:
    """Deliveries by id."""
    return {row.id: row for row in _select_refs(session, "id", sorted(keys))}


def _load_refs_multi(session: Session, prefixes: set[str]) -> dict[str, list[DeliveryRef]]:
    """Deliveries by the provider message id of their API request (many per id)."""
    found: dict[str, list[DeliveryRef]] = {}
    for message_id, ref in _select_refs(session, "provider_message_id", sorted(prefixes)):
        found.setdefault(message_id, []).append(ref)
    return found


def _select_refs(session: Session, key: str, values: list):
    """DeliveryRefs of the rows whose ``key`` column is among ``values``; for a key other
    than ``id``, (key value, ref) pairs. Plain driver SQL with the statement text cached:
    SQLAlchemy's expanding ``IN`` re-renders the statement for every call, which cost more
    than the query itself at 1,000 ids per post. Values are always bound parameters."""
    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    make = DeliveryRef._make
    for chunk in _chunks(values, max(len(values), 1) if postgres else _CHUNK):
        if postgres:  # one array parameter holds them all
            result = connection.exec_driver_sql(_refs_sql_postgres(key), (chunk,))
        else:
            result = connection.exec_driver_sql(_refs_sql_sqlite(key, len(chunk)), tuple(chunk))
        rows = result.all()  # one fetch; iterating fetches row by row
        if key != "id":
            yield from ((row[-1], make(row[:-1])) for row in rows)
        else:
            yield from map(make, rows)


_ARRAY_TYPES = {"id": "bigint[]", "provider_message_id": "varchar[]"}


def _ref_columns(key: str) -> str:
    """The DeliveryRef columns, then the key itself when it is not the id (read first)."""
    fields = DeliveryRef._fields
    return ", ".join(fields if key == "id" else (*fields, key))


@functools.cache
def _refs_sql_postgres(key: str) -> str:
    return (f"SELECT {_ref_columns(key)} FROM deliveries "
            f"WHERE {key} = ANY(%s::{_ARRAY_TYPES[key]})")


@functools.lru_cache(maxsize=64)
def _refs_sql_sqlite(key: str, count: int) -> str:
    return (f"SELECT {_ref_columns(key)} FROM deliveries "
            f"WHERE {key} IN ({', '.join(['?'] * count)})")


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


_EVENT_COLUMNS = ("provider_event_id", "delivery_id", "campaign_id", "subscriber_id",
                  "provider_message_id", "email", "type", "reason", "occurred_at",
                  "received_at", "raw")


def _insert(session: Session, candidates: Sequence[StoredEvent]) -> set[str]:
    """Insert every event, skipping ids already stored (by the database's unique index, so
    two posts racing with the same event store it once); returns the provider event ids of
    the ones that were new."""
    now = utcnow()
    rows = []
    # In id order, so two posts holding some of the same events take the unique index's
    # locks in the same order (PostgreSQL) and cannot deadlock on them.
    for item in sorted(candidates, key=lambda c: c.event.event_id):
        event, ref = item.event, item.delivery
        rows.append((event.event_id, ref.id if ref else None, ref.campaign_id if ref else None,
                     item.subscriber_id, event.provider_message_id,
                     event.email[:320] if event.email else None, event.type, event.reason,
                     event.occurred_at, now,
                     event.raw_json if event.raw_json is not None else json.dumps(event.raw)))
    return insert_new(session, DeliveryEventRow.__table__, _EVENT_COLUMNS, rows,
                      unique="provider_event_id", serialized=("raw",))


def _chunks(items: list, size: int = _CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _log(stored: Sequence[StoredEvent]) -> None:
    if not events_logger.isEnabledFor(logging.INFO):
        return
    for item in stored:
        event, ref = item.event, item.delivery
        log_event("provider_event", type=event.type, event_id=event.event_id,
                  campaign=ref.campaign_id if ref else None,
                  delivery=ref.id if ref else None, outcome=event.type,
                  reason=event.reason)



#: Attempts for a batch that hit a passing conflict (deadlock, serialization, busy SQLite).
TRANSIENT_ATTEMPTS = 3


def ingest_with_retry(db, raw_events: Sequence[Any], settings: Settings, *,
                      raw_texts: Sequence[str] | None = None) -> IngestSummary:
    """``ingest_events`` in its own unit of work, tried again (up to ``TRANSIENT_ATTEMPTS``)
    when the database reports a passing conflict; each try starts from a clean rollback and
    storing is idempotent, so a retry never double-counts. Raises the last database error."""
    for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
        try:
            with db.session() as session:
                return ingest_events(session, raw_events, settings, raw_texts=raw_texts)
        except OperationalError as exc:
            if attempt == TRANSIENT_ATTEMPTS or not is_transient(exc):
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def is_transient(exc: OperationalError) -> bool:
    """Deadlock or serialization failure (PostgreSQL), or a busy database (SQLite)."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code in ("40P01", "40001") or "database is locked" in str(exc.orig)
