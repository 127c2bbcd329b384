"""Provider evidence suppresses people at once, each change with its cause."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from mailer.tracking.ingest import ingest_events
from mailer.tracking.models import DeliveryEventRow
from mailer.tracking.suppression import erase_events_for
from subscribers.models import StatusChange, Subscriber
from subscribers.service import is_suppressed
from tests.tracking.factory import T0, make_campaign, make_delivery, make_subscriber, sg_event


@pytest.fixture
def person(db):
    """jane@example.org, active, with one accepted delivery in each of three campaigns."""
    with db.session() as session:
        subscriber = make_subscriber(session, "jane@example.org")
        deliveries = [make_delivery(session, make_campaign(session), subscriber)
                      for _ in range(3)]
    return subscriber, deliveries


def ingest(db, settings, events):
    with db.session() as session:
        return ingest_events(session, events, settings)


def status_of(db, subscriber) -> tuple[str, list[StatusChange]]:
    with db.session() as session:
        row = session.get(Subscriber, subscriber.id)
        history = session.scalars(select(StatusChange)
                                  .where(StatusChange.subscriber_id == subscriber.id)
                                  .order_by(StatusChange.id)).all()
        return row.status, history


@pytest.mark.parametrize("event,extra,expected", [
    ("bounce", {"type": "bounce", "reason": "550 5.1.1 unknown user"}, "bounced"),
    ("spamreport", {}, "complained"),
    ("unsubscribe", {}, "unsubscribed"),
    ("group_unsubscribe", {"asm_group_id": 1}, "unsubscribed"),
    ("dropped", {"reason": "Bounced Address"}, "bounced"),
    ("dropped", {"reason": "Spam Reporting Address"}, "complained"),
    ("dropped", {"reason": "Unsubscribed Address"}, "unsubscribed"),
])
def test_event_suppresses_with_its_cause(db, settings, person, event, extra, expected):
    subscriber, deliveries = person
    summary = ingest(db, settings, [sg_event(deliveries[0], event, **extra)])
    status, history = status_of(db, subscriber)
    assert status == expected
    assert len(history) == 1 and history[0].new_status == expected
    assert "sendgrid" in history[0].cause
    assert f"delivery {deliveries[0].id}" in history[0].cause
    assert summary.suppressed[0]["status"] == expected
    with db.session() as session:
        assert is_suppressed(session, "jane@example.org")


@pytest.mark.parametrize("event,extra", [
    ("delivered", {}), ("deferred", {"response": "421 later"}), ("open", {}), ("click", {}),
    ("processed", {}), ("dropped", {"reason": "Recipient List over Package Quota"}),
    ("group_resubscribe", {}),
])
def test_other_events_leave_the_person_active(db, settings, person, event, extra):
    subscriber, deliveries = person
    assert ingest(db, settings, [sg_event(deliveries[0], event, **extra)]).suppressed == []
    assert status_of(db, subscriber) == ("active", [])


def test_soft_bounces_suppress_only_at_the_threshold(db, settings, person):
    subscriber, deliveries = person
    assert settings.soft_bounce_threshold == 3
    for index, delivery in enumerate(deliveries[:2]):
        ingest(db, settings, [sg_event(delivery, "bounce", type="blocked",
                                       at=T0 + timedelta(hours=index))])
        assert status_of(db, subscriber)[0] == "active"
    ingest(db, settings, [sg_event(deliveries[2], "bounce", type="blocked",
                                   reason="421 rate limited", at=T0 + timedelta(hours=3))])
    status, history = status_of(db, subscriber)
    assert status == "bounced"
    assert "repeated soft bounces" in history[0].cause


def test_a_delivery_in_between_resets_the_soft_bounce_count(db, settings, person):
    subscriber, deliveries = person
    ingest(db, settings, [sg_event(deliveries[0], "bounce", type="blocked", at=T0),
                          sg_event(deliveries[1], "bounce", type="blocked",
                                   at=T0 + timedelta(hours=1)),
                          sg_event(deliveries[1], "delivered", at=T0 + timedelta(hours=2))])
    ingest(db, settings, [sg_event(deliveries[2], "bounce", type="blocked",
                                   at=T0 + timedelta(hours=3))])
    assert status_of(db, subscriber)[0] == "active"


def test_replayed_block_is_not_counted_twice(db, settings, person):
    subscriber, deliveries = person
    block = sg_event(deliveries[0], "bounce", type="blocked")
    for _ in range(4):
        ingest(db, settings, [block])
    assert status_of(db, subscriber)[0] == "active"


def test_an_unsubscribed_person_stays_unsubscribed_after_a_bounce(db, settings, person):
    subscriber, deliveries = person
    ingest(db, settings, [sg_event(deliveries[0], "unsubscribe")])
    ingest(db, settings, [sg_event(deliveries[1], "bounce", type="bounce")])
    status, history = status_of(db, subscriber)
    assert status == "unsubscribed" and len(history) == 1


def test_a_complaint_is_recorded_even_after_an_unsubscribe(db, settings, person):
    subscriber, deliveries = person
    ingest(db, settings, [sg_event(deliveries[0], "unsubscribe")])
    ingest(db, settings, [sg_event(deliveries[1], "spamreport")])
    status, history = status_of(db, subscriber)
    assert status == "complained"
    assert [h.new_status for h in history] == ["unsubscribed", "complained"]


def test_unknown_address_is_put_on_the_suppression_list(db, settings):
    """A test send or another tool reported a hard bounce for someone not on our list: no
    later import may add them."""
    ingest(db, settings, [{"event": "bounce", "type": "bounce", "email": "Gone@Example.org",
                           "sg_event_id": "x1", "timestamp": 1763650000}])
    with db.session() as session:
        assert is_suppressed(session, "gone@example.org")


def test_event_without_a_delivery_still_finds_the_subscriber_by_address(db, settings, person):
    subscriber, _ = person
    ingest(db, settings, [{"event": "spamreport", "email": "JANE@example.org",
                           "sg_event_id": "x2", "timestamp": 1763650000}])
    assert status_of(db, subscriber)[0] == "complained"


def test_erase_events_for_scrubs_the_address_and_payload(db, settings, person):
    subscriber, deliveries = person
    ingest(db, settings, [sg_event(deliveries[0], "delivered"),
                          {"event": "open", "email": "jane@example.org", "sg_event_id": "y",
                           "timestamp": 1763650000}])
    with db.session() as session:
        assert erase_events_for(session, subscriber_id=subscriber.id,
                                email="jane@example.org") == 2
    with db.session() as session:
        rows = session.scalars(select(DeliveryEventRow)).all()
    assert [(r.email, r.raw, r.subscriber_id) for r in rows] == [(None, {}, None)] * 2
    assert sorted(r.type for r in rows) == ["delivered", "opened"]


def test_forgetting_a_person_scrubs_their_provider_events(db, settings, person):
    from mailer.tracking.erasure import forget

    subscriber, deliveries = person
    ingest(db, settings, [sg_event(deliveries[0], "delivered"),
                          sg_event(deliveries[1], "open", custom_args=False)])
    with db.session() as session:
        forget(session, session.get(Subscriber, subscriber.id))
    with db.session() as session:
        rows = session.scalars(select(DeliveryEventRow)).all()
    assert len(rows) == 2
    assert all(r.email is None and r.raw == {} for r in rows)
    assert "jane@example.org" not in repr([(r.reason, r.provider_message_id) for r in rows])


def test_cause_reads_as_one_line_naming_the_evidence(db, settings, person):
    subscriber, deliveries = person
    d = deliveries[1]
    ingest(db, settings, [sg_event(d, "spamreport", event_id="sg-1")])
    assert status_of(db, subscriber)[1][0].cause == (
        f"sendgrid: spam complaint; campaign {d.campaign_id}, delivery {d.id}, event sg-1")


def test_many_bounces_in_one_post_are_suppressed_with_a_fixed_number_of_statements(db, settings):
    """A post's suppressions are set-based: five bounced people cost the statements of one,
    but for each change's own history row (the old path ran five per person), and each
    person is still changed once per event, with a cause."""
    from sqlalchemy import event as sa_event

    def statements_for(count: int, prefix: str) -> tuple[int, list]:
        with db.session() as session:
            campaign = make_campaign(session)
            people = [make_subscriber(session, f"{prefix}{i}@example.org") for i in range(count)]
            deliveries = [make_delivery(session, campaign, p) for p in people]
        posted = [sg_event(d, "bounce", type="bounce", event_id=f"{prefix}b{d.id}")
                  for d in deliveries]
        posted += [sg_event(d, "spamreport", event_id=f"{prefix}s{d.id}") for d in deliveries]
        seen: list[str] = []

        def count_statement(*_args):
            seen.append(_args[2])

        sa_event.listen(db.engine, "before_cursor_execute", count_statement)
        try:
            summary = ingest(db, settings, posted)
        finally:
            sa_event.remove(db.engine, "before_cursor_execute", count_statement)
        return seen, summary.suppressed, people

    def fixed(statements):  # a status change's history row may be one INSERT each (SQLite)
        return [s for s in statements if not s.startswith("INSERT INTO status_changes")]

    one, _, _ = statements_for(1, "one")
    five, suppressed, people = statements_for(5, "five")
    assert len(fixed(five)) == len(fixed(one))
    assert len(five) - len(fixed(five)) <= 10  # at most one per change: 5 bounces, 5 complaints
    assert sorted(s["email"] for s in suppressed if s["status"] == "bounced") == \
        sorted(p.email for p in people)
    for person in people:
        status, history = status_of(db, person)
        # The spam report after the bounce is recorded too (complaints always are).
        assert status == "complained"
        assert [h.new_status for h in history] == ["bounced", "complained"]
        with db.session() as session:
            assert is_suppressed(session, person.email)
