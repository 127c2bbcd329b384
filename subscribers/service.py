"""Subscriber operations that keep consent intact: add, find, change status, unsubscribe,
confirm, forget, suppress.

Rules every function here enforces (and the importer follows too):

- Every status change writes a ``StatusChange`` row with its time and cause.
- A person who unsubscribed, bounced or complained is never made active again by an import or
  by staff; only their own confirmed opt-in (``confirm``) lifts it.
- ``forget`` erases the person's data and keeps only a SHA-256 of the address on the
  suppression list, so a later import cannot add them back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from mailer.errors import InvalidInput, NotFound
from mailer.storage.base import utcnow
from subscribers.addresses import email_hash, normalize_email
from subscribers.models import (
    ACTIVE,
    FREQUENCIES,
    PENDING,
    STATUSES,
    UNSUBSCRIBED,
    StatusChange,
    Subscriber,
    SubscriberTopic,
    Suppression,
    Topic,
)
from subscribers.places import fill_place
from subscribers.text import clean_text

#: Suppression reasons.
FORGOTTEN = "forgotten"


class Suppressed(InvalidInput):
    """The address is on the suppression list (it unsubscribed, bounced, complained or was
    forgotten); only the person's own confirmed opt-in may bring it back."""


# --- lookup ----------------------------------------------------------------------------------

def find_by_email(session: Session, email: str) -> Subscriber | None:
    """The subscriber with this address (any case), or None. Raises InvalidEmail for an
    address that is not valid syntax."""
    return session.scalar(select(Subscriber).where(Subscriber.email == normalize_email(email)))


def get_by_email(session: Session, email: str) -> Subscriber:
    """Like ``find_by_email`` but raises NotFound when there is no such subscriber."""
    subscriber = find_by_email(session, email)
    if subscriber is None:
        raise NotFound(f"no subscriber with address {email.strip()!r}")
    return subscriber


def is_suppressed(session: Session, email: str) -> bool:
    """True when the address (any case) is on the suppression list."""
    return _is_hash_suppressed(session, email_hash(normalize_email(email)))


def _is_hash_suppressed(session: Session, digest: str) -> bool:
    found = session.scalar(select(Suppression.id).where(Suppression.email_hash == digest))
    return found is not None


def suppress(session: Session, email: str, reason: str) -> bool:
    """Put the address on the suppression list. Returns False when it already was there."""
    return suppress_hash(session, email_hash(normalize_email(email)), reason)


def suppress_hash(session: Session, digest: str, reason: str) -> bool:
    return bool(suppress_hashes(session, {digest: reason}))


def suppress_hashes(session: Session, reasons: Mapping[str, str]) -> set[str]:
    """Put many addresses, given as ``{email hash: reason}``, on the suppression list with one
    lookup and one insert. Returns the hashes that were not on it already."""
    if not reasons:
        return set()
    known = set(session.scalars(
        select(Suppression.email_hash).where(Suppression.email_hash.in_(sorted(reasons)))))
    added = [{"email_hash": digest, "reason": reason[:50]}  # email_key: the column default
             for digest, reason in sorted(reasons.items()) if digest not in known]
    if added:  # one executemany, not a flush of one ORM object per address
        session.execute(insert(Suppression), added)
    return {row["email_hash"] for row in added}


# --- status ----------------------------------------------------------------------------------

def set_status(session: Session, subscriber: Subscriber, new_status: str, *, cause: str,
               flush: bool = True) -> bool:
    """Move ``subscriber`` to ``new_status`` and record the change with its cause; flushed
    unless ``flush`` is False (a caller changing many people flushes them all at once).

    Returns False (and records nothing) when the status is already ``new_status``.
    Raises InvalidInput for a status outside ``STATUSES`` or an empty cause.
    """
    if new_status not in STATUSES:
        raise InvalidInput(f"unknown status {new_status!r} (one of {', '.join(STATUSES)})")
    if not cause or not cause.strip():
        raise InvalidInput("a status change needs a cause")
    old = subscriber.status
    if old == new_status:
        return False
    subscriber.status = new_status
    session.add(StatusChange(subscriber_id=subscriber.id, old_status=old,
                             new_status=new_status, cause=cause.strip()))
    if flush:
        session.flush()
    return True


def unsubscribe(session: Session, subscriber: Subscriber, *, cause: str) -> bool:
    """Unsubscribe and suppress the address. Returns False when already unsubscribed."""
    changed = set_status(session, subscriber, UNSUBSCRIBED, cause=cause)
    suppress_hash(session, subscriber.email_hash, UNSUBSCRIBED)
    return changed


def confirm(session: Session, subscriber: Subscriber, *, cause: str = "confirmed opt-in",
            at: datetime | None = None) -> bool:
    """The person confirmed their address (double opt-in link): make them active, note when,
    and lift any suppression, since this is their own fresh consent. Returns False when they
    were already active and confirmed."""
    when = at or utcnow()
    if subscriber.confirmed_at is None or subscriber.status != ACTIVE:
        subscriber.confirmed_at = when
    session.execute(delete(Suppression).where(Suppression.email_hash == subscriber.email_hash))
    return set_status(session, subscriber, ACTIVE, cause=cause)


# --- adding ----------------------------------------------------------------------------------

def add_subscriber(
    session: Session, *, email: str, name: str | None = None, zip: str | None = None,
    county: str | None = None, state: str | None = None, district: str | None = None,
    city: str | None = None,
    topics: Iterable[str] = (), frequency: str = "immediate", status: str = ACTIVE,
    consent_source: str = "staff", consent_ip: str | None = None,
    consent_at: datetime | None = None, confirm_sent_at: datetime | None = None,
    looked_up: bool = False,
) -> tuple[Subscriber, bool]:
    """Add a subscriber, or update the details of an existing one. Returns (subscriber, created).

    ``status`` is ``active`` (consent already given) or ``pending`` (double opt-in: they become
    active through ``confirm``). An existing subscriber's given details are updated and their
    topics extended; their status is raised from pending to active when asked, but never
    changed from unsubscribed, bounced or complained. A new address that is on the
    suppression list may only be added as ``pending``.

    ``confirm_sent_at``: a new subscriber's confirmation email is already on its way (the web
    signup queues it in the same transaction). ``looked_up``: the caller has just found no
    subscriber with this address in this transaction (the look-up is not repeated).

    Raises InvalidEmail, NotFound for an unknown topic slug, Suppressed, InvalidInput for a bad
    frequency or status.
    """
    address = normalize_email(email)
    if status not in (ACTIVE, PENDING):
        raise InvalidInput(f"a new subscriber is active or pending, not {status!r}")
    frequency = _check_frequency(frequency)
    topic_ids = resolve_topics(session, topics)
    details = clean_details(name=name, zip=zip, county=county, state=state, district=district,
                            city=city)
    details["county"], details["state"], details["city"] = fill_place(
        details["zip"], details["county"], details["state"], details["city"])
    subscriber = None if looked_up else session.scalar(
        select(Subscriber).where(Subscriber.email == address))
    created = subscriber is None
    if created:
        subscriber = _create(session, address, details, frequency, status,
                             consent_source, consent_ip, consent_at, confirm_sent_at)
    else:
        _update(session, subscriber, details, frequency, status, consent_source)
    _link_topics(session, subscriber, topic_ids, new=created)
    session.flush()
    return subscriber, created


def add_pending(session: Session, *, email: str, name: str | None, zip: str | None,
                topic_ids: Iterable[int], frequency: str, consent_source: str,
                consent_ip: str | None, confirm_sent_at: datetime) -> tuple[int, str | None]:
    """Insert a new ``pending`` subscriber (a double opt-in signup whose confirmation email
    the caller queues in this transaction) following ``topic_ids``; returns its id.

    The same row ``add_subscriber`` would write for a new pending address (details cleaned,
    place filled from the ZIP, consent recorded now), written with one bound insert for the
    subscriber and one for its topics instead of ORM flushes: the public signup form runs
    this for every new address. The caller has just found no subscriber with this address;
    if another transaction adds it first, the insert raises IntegrityError.
    Raises InvalidEmail, InvalidInput for a bad frequency."""
    address = normalize_email(email)
    details = clean_details(name=name, zip=zip, county=None, state=None, district=None,
                            city=None)
    details["county"], details["state"], details["city"] = fill_place(
        details["zip"], None, None, None)
    now = utcnow()
    # The tables, not the mapped classes: an ORM bulk insert costs as much as a flush.
    table = Subscriber.__table__
    connection = session.connection()
    subscriber_id = connection.execute(insert(table).returning(table.c.id), {
        "email": address, "frequency": _check_frequency(frequency), "status": PENDING,
        "consent_source": consent_source, "consent_ip": consent_ip, "consent_at": now,
        "confirm_sent_at": confirm_sent_at, "created_at": now, "updated_at": now,
        **details}).scalar_one()
    links = [{"subscriber_id": subscriber_id, "topic_id": t} for t in sorted(set(topic_ids))]
    if links:
        connection.execute(insert(SubscriberTopic.__table__), links)
    return subscriber_id, details["name"]


def _create(session, address, details, frequency, status, source, ip, at,
            confirm_sent_at=None) -> Subscriber:
    if status == ACTIVE and _is_hash_suppressed(session, email_hash(address)):
        raise Suppressed(f"{address} is on the suppression list; they can re-subscribe "
                         "themselves through the sign-up form")
    subscriber = Subscriber(email=address, frequency=frequency, status=status,
                            consent_source=source, consent_ip=ip,
                            consent_at=at or utcnow(), confirm_sent_at=confirm_sent_at,
                            **details)
    session.add(subscriber)
    session.flush()
    # Joining is recorded by the consent fields (source, time, IP); StatusChange rows record
    # every change after that (``status_history`` shows both).
    return subscriber


def _update(session, subscriber, details, frequency, status, source) -> None:
    for key, value in details.items():
        if value is not None:
            setattr(subscriber, key, value)
    subscriber.frequency = frequency
    if subscriber.status == PENDING and status == ACTIVE:
        set_status(session, subscriber, ACTIVE, cause=f"activated ({source})")


def _check_frequency(frequency: str | None) -> str:
    value = (frequency or "immediate").strip().lower()
    if value not in FREQUENCIES:
        raise InvalidInput(f"frequency is one of {', '.join(FREQUENCIES)}; not {frequency!r}")
    return value


def clean_details(**fields: str | None) -> dict[str, str | None]:
    """Clean each detail (``clean_text``: one line, no control characters), drop empty ones to
    None, upper-case the state and cut each to its column's length. Raises InvalidInput for a
    state that is not two letters."""
    limits = {"name": 200, "zip": 10, "county": 100, "state": 2, "district": 20, "city": 100}
    cleaned: dict[str, str | None] = {}
    for key, value in fields.items():
        text = clean_text(value) or ""
        if key == "state" and text:
            text = text.upper()
            if len(text) != 2 or not text.isalpha():
                raise InvalidInput(f"state must be a two-letter code, not {value!r}")
        cleaned[key] = text[: limits[key]] or None
    return cleaned


def resolve_topics(session: Session, slugs: Iterable[str]) -> dict[str, int]:
    """slug -> topic id for each slug given. Raises NotFound naming the unknown slugs."""
    wanted = sorted({s.strip().lower() for s in slugs if s and s.strip()})
    if not wanted:
        return {}
    found = dict(session.execute(select(Topic.slug, Topic.id).where(Topic.slug.in_(wanted))).all())
    missing = [s for s in wanted if s not in found]
    if missing:
        raise NotFound(f"unknown topic {', '.join(missing)} (see `mailer topics list`)")
    return found


def _link_topics(session: Session, subscriber: Subscriber, topic_ids: dict[str, int], *,
                 new: bool = False) -> None:
    """Add the topics the subscriber does not follow yet (``new``: they follow none)."""
    if not topic_ids:
        return
    have = set() if new else set(session.scalars(
        select(SubscriberTopic.topic_id).where(SubscriberTopic.subscriber_id == subscriber.id)))
    for topic_id in sorted(set(topic_ids.values()) - have):
        session.add(SubscriberTopic(subscriber_id=subscriber.id, topic_id=topic_id))


def topic_slugs(session: Session, subscriber: Subscriber) -> list[str]:
    """The slugs of the topics the subscriber follows, sorted."""
    return list(session.scalars(
        select(Topic.slug).join(SubscriberTopic, SubscriberTopic.topic_id == Topic.id)
        .where(SubscriberTopic.subscriber_id == subscriber.id).order_by(Topic.slug)
    ))


def set_topics(session: Session, subscriber: Subscriber, slugs: Iterable[str]) -> None:
    """Replace the topics the subscriber follows (preferences page). Raises NotFound."""
    topic_ids = resolve_topics(session, slugs)
    session.execute(delete(SubscriberTopic).where(SubscriberTopic.subscriber_id == subscriber.id))
    session.flush()
    for topic_id in sorted(set(topic_ids.values())):
        session.add(SubscriberTopic(subscriber_id=subscriber.id, topic_id=topic_id))
    session.flush()


def status_history(session: Session, subscriber: Subscriber) -> list[StatusChange]:
    return list(session.scalars(select(StatusChange)
                                .where(StatusChange.subscriber_id == subscriber.id)
                                .order_by(StatusChange.at, StatusChange.id)))


def subscriber_to_dict(session: Session, subscriber: Subscriber, *, history: bool = False) -> dict:
    """The JSON shape of one subscriber (``subscribers show``, the API)."""
    def iso(value):
        return value.isoformat() if value else None

    data = {
        "id": subscriber.id, "email": subscriber.email, "name": subscriber.name,
        "zip": subscriber.zip, "county": subscriber.county, "state": subscriber.state,
        "district": subscriber.district, "city": subscriber.city,
        "topics": topic_slugs(session, subscriber),
        "frequency": subscriber.frequency, "status": subscriber.status,
        "suppressed": _is_hash_suppressed(session, subscriber.email_hash),
        "consent": {"source": subscriber.consent_source, "at": iso(subscriber.consent_at),
                    "ip": subscriber.consent_ip, "confirmed_at": iso(subscriber.confirmed_at)},
        "created_at": iso(subscriber.created_at), "updated_at": iso(subscriber.updated_at),
    }
    if history:
        changes = status_history(session, subscriber)
        first = changes[0].old_status if changes else subscriber.status
        joined = {"at": iso(subscriber.consent_at or subscriber.created_at), "from": None,
                  "to": first, "cause": f"joined: {subscriber.consent_source or 'unknown source'}"}
        data["history"] = [joined] + [
            {"at": iso(c.at), "from": c.old_status, "to": c.new_status, "cause": c.cause}
            for c in changes
        ]
    return data


__all__ = [
    "FORGOTTEN", "Suppressed", "add_subscriber", "clean_details", "confirm", "find_by_email",
    "get_by_email", "is_suppressed", "resolve_topics", "set_status", "set_topics",
    "status_history", "subscriber_to_dict", "suppress", "suppress_hash",
    "topic_slugs", "unsubscribe",
]
