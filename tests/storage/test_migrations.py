"""Upgrading a database that already holds people keeps every one of them, their topics and
the suppression list, and the new keys agree with the application's."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import select, text

from mailer.storage.db import Database, current_revision, head_revision, upgrade
from subscribers import segments
from subscribers.addresses import email_key
from subscribers.models import Subscriber, SubscriberTopic, Suppression

NOW = "2026-11-01 12:00:00.000000"


def _sha(address: str) -> str:
    return hashlib.sha256(address.encode()).hexdigest()


def _fill_revision_0001(engine) -> None:
    """Two followers of a topic (one of them suppressed) and a forgotten address, stored as
    revision 0001 stored them (hex hashes on subscribers)."""
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO topics (id, slug, name, description, terms, created_at) "
            "VALUES (1, 'veterans', 'Veterans', '', '{}', :now)"), {"now": NOW})
        for i, address in ((1, "ann@example.org"), (2, "bob@example.org")):
            conn.execute(text(
                "INSERT INTO subscribers (id, email, email_hash, frequency, status, "
                "created_at, updated_at) VALUES (:i, :e, :h, 'immediate', 'active', :now, :now)"),
                {"i": i, "e": address, "h": _sha(address), "now": NOW})
            conn.execute(text("INSERT INTO subscriber_topics VALUES (:i, 1)"), {"i": i})
        for address in ("bob@example.org", "forgotten@example.org"):
            conn.execute(text(
                "INSERT INTO suppressions (email_hash, reason, created_at) "
                "VALUES (:h, 'complained', :now)"), {"h": _sha(address), "now": NOW})


def test_upgrade_from_0001_keeps_people_topics_and_suppressions(empty_engine):
    upgrade(empty_engine, "0001")
    assert current_revision(empty_engine) == "0001"
    _fill_revision_0001(empty_engine)

    assert upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    db = Database(empty_engine)
    with db.session() as session:
        people = {s.email: s.email_key for s in session.scalars(select(Subscriber))}
        assert people == {a: email_key(_sha(a)) for a in ("ann@example.org", "bob@example.org")}
        # Rebuilding the subscribers table on SQLite must not cascade to their topics.
        assert session.scalar(select(text("count(*)")).select_from(SubscriberTopic)) == 2
        keys = dict(session.execute(select(Suppression.email_hash, Suppression.email_key)).all())
        assert keys == {_sha(a): email_key(_sha(a))
                        for a in ("bob@example.org", "forgotten@example.org")}
        assert segments.count(session, query='topic = "veterans"') == 1
        assert segments.count(session, query='topic = "veterans"', audience=False) == 2


def test_upgrade_to_0004_keeps_every_stored_event_and_its_payload(empty_engine):
    """The event log's payload column goes from jsonb to json (PostgreSQL): each stored event
    and what the provider said in it survive, and new events are stored as posted."""
    from mailer.tracking.models import DeliveryEventRow

    upgrade(empty_engine, "0003")
    payload = '{"event": "open", "email": "ann@example.org", "useragent": "Mozilla ☃"}'
    with empty_engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO delivery_events (provider_event_id, type, occurred_at, received_at, raw)"
            " VALUES ('e1', 'opened', :now, :now, :raw)"), {"now": NOW, "raw": payload})
    assert upgrade(empty_engine)
    with Database(empty_engine).session() as session:
        row = session.scalar(select(DeliveryEventRow))
        assert (row.provider_event_id, row.raw) == ("e1", json.loads(payload))
