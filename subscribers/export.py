"""CSV export of the list that a spreadsheet can open safely.

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (or their
full-width forms) would be run as a formula by Excel, LibreOffice or Google Sheets (CSV
injection: a "name" like ``=HYPERLINK(...)`` in a sign-up form). Such cells are prefixed with
a single quote, which spreadsheets show as text. The file is UTF-8 with a BOM so Excel reads
accented names correctly, and it imports back unchanged (``mailer subscribers import``).
"""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import select

from mailer.storage.db import Database
from subscribers.models import Subscriber, SubscriberTopic, Topic
from subscribers.segments import resolve_condition

COLUMNS = (
    "email", "name", "zip", "county", "state", "district", "topics", "frequency", "status",
    "consent_source", "consent_at", "consent_ip", "confirmed_at", "created_at", "city",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")
BATCH = 5000


def neutralize(value: object) -> str:
    """The cell text for ``value``, made inert for spreadsheets (see the module docstring)."""
    if value is None:
        return ""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    if text.startswith(_FORMULA_STARTS) or text.lstrip(" ").startswith(_FORMULA_STARTS[:4]):
        return "'" + text
    return text


def export_subscribers(db: Database, path: Path | str, *, query: str | None = None) -> int:
    """Write every subscriber (or those matching ``query``, whatever their status) to
    ``path``, ordered by id, reading the table in batches. Returns how many were written.
    Raises QueryError for a bad query, OSError when the file cannot be written."""
    path = Path(path)
    written = 0
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        last_id = 0
        while True:
            with db.session() as session:
                condition = resolve_condition(session, query=query) if query else None
                batch = _batch(session, last_id, condition)
                if not batch:
                    break
                topics = _topics(session, [s.id for s in batch])
            for subscriber in batch:
                writer.writerow([neutralize(v) for v in _row(subscriber, topics)])
            written += len(batch)
            last_id = batch[-1].id
    return written


def _batch(session, after_id: int, condition) -> list[Subscriber]:
    query = select(Subscriber).where(Subscriber.id > after_id).order_by(Subscriber.id).limit(BATCH)
    if condition is not None:
        query = query.where(condition)
    return list(session.scalars(query))


def _topics(session, ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    rows = session.execute(
        select(SubscriberTopic.subscriber_id, Topic.slug)
        .join(Topic, Topic.id == SubscriberTopic.topic_id)
        .where(SubscriberTopic.subscriber_id.in_(ids)).order_by(Topic.slug))
    for subscriber_id, slug in rows:
        found.setdefault(subscriber_id, []).append(slug)
    return found


def _row(subscriber: Subscriber, topics: dict[int, list[str]]) -> list[object]:
    return [
        subscriber.email, subscriber.name, subscriber.zip, subscriber.county, subscriber.state,
        subscriber.district, ";".join(topics.get(subscriber.id, [])), subscriber.frequency,
        subscriber.status, subscriber.consent_source, subscriber.consent_at,
        subscriber.consent_ip, subscriber.confirmed_at, subscriber.created_at, subscriber.city,
    ]


__all__ = ["COLUMNS", "export_subscribers", "neutralize"]
