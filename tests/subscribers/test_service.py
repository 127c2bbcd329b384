"""Consent-keeping operations: status changes are recorded, choices are never undone by
staff or imports, forget keeps only a hash."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import func, select

from mailer.errors import InvalidInput, NotFound
from mailer.storage.base import utcnow
from mailer.tracking.erasure import forget
from subscribers import service
from subscribers.addresses import InvalidEmail, email_hash, email_key
from subscribers.models import (
    ACTIVE,
    BOUNCED,
    COMPLAINED,
    PENDING,
    UNSUBSCRIBED,
    StatusChange,
    Subscriber,
    SubscriberTopic,
    Suppression,
)
from subscribers.search import Search, search


def test_add_normalizes_and_finds_case_insensitively(db, topics):
    with db.session() as session:
        subscriber, created = service.add_subscriber(
            session, email=" Jane.Doe@Example.ORG ", name="  Jane   Doe ", zip="58102",
            state="nd", topics=["human-trafficking"], frequency="Weekly", consent_ip="10.0.0.1")
        assert created and subscriber.email == "jane.doe@example.org"
        assert subscriber.email_hash == hashlib.sha256(b"jane.doe@example.org").hexdigest()
    with db.session() as session:
        found = service.find_by_email(session, "JANE.DOE@example.org")
        assert found is not None and found.id == subscriber.id
        assert (found.name, found.state, found.frequency, found.status) == (
            "Jane Doe", "ND", "weekly", ACTIVE)
        assert service.topic_slugs(session, found) == ["human-trafficking"]
        assert found.consent_ip == "10.0.0.1" and found.consent_at is not None
        again, created = service.add_subscriber(session, email="jane.doe@EXAMPLE.org",
                                                topics=["veterans"], county="Cass")
        assert not created and again.id == found.id
        assert service.topic_slugs(session, again) == ["human-trafficking", "veterans"]
        assert again.name == "Jane Doe" and again.county == "Cass"
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 1


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"email": "not-an-address"}, InvalidEmail),
    ({"email": "a@example.org", "topics": ["nope"]}, NotFound),
    ({"email": "a@example.org", "frequency": "hourly"}, InvalidInput),
    ({"email": "a@example.org", "state": "North Dakotaa"}, InvalidInput),
    ({"email": "a@example.org", "status": UNSUBSCRIBED}, InvalidInput),
])
def test_add_refuses_bad_input(db, topics, kwargs, error):
    with db.session() as session, pytest.raises(error):
        service.add_subscriber(session, **kwargs)


def test_set_status_records_each_change_with_cause(db, topics):
    with db.session() as session:
        subscriber, _ = service.add_subscriber(session, email="a@example.org", status=PENDING)
        assert service.confirm(session, subscriber) is True
        assert subscriber.confirmed_at is not None
        assert service.set_status(session, subscriber, ACTIVE, cause="again") is False
        assert service.set_status(session, subscriber, BOUNCED, cause="hard bounce") is True
        with pytest.raises(InvalidInput):
            service.set_status(session, subscriber, "gone", cause="x")
        with pytest.raises(InvalidInput):
            service.set_status(session, subscriber, ACTIVE, cause="  ")
        history = [(c.old_status, c.new_status, c.cause)
                   for c in service.status_history(session, subscriber)]
        assert history == [(PENDING, ACTIVE, "confirmed opt-in"),
                           (ACTIVE, BOUNCED, "hard bounce")]
        shown = service.subscriber_to_dict(session, subscriber, history=True)
        assert [h["to"] for h in shown["history"]] == [PENDING, ACTIVE, BOUNCED]


def test_unsubscribe_suppresses_and_staff_cannot_reactivate(db, topics):
    with db.session() as session:
        subscriber, _ = service.add_subscriber(session, email="a@example.org")
        assert service.unsubscribe(session, subscriber, cause="one-click") is True
        assert service.unsubscribe(session, subscriber, cause="again") is False
        assert service.is_suppressed(session, "A@Example.org")
    with db.session() as session:
        again, created = service.add_subscriber(session, email="a@example.org", name="New")
        assert not created and again.status == UNSUBSCRIBED and again.name == "New"


def test_confirm_is_the_way_back_and_lifts_suppression(db, topics):
    with db.session() as session:
        subscriber, _ = service.add_subscriber(session, email="a@example.org")
        service.unsubscribe(session, subscriber, cause="test")
        service.confirm(session, subscriber, cause="confirmed by email link")
        assert subscriber.status == ACTIVE
        assert not service.is_suppressed(session, "a@example.org")


def test_forget_erases_and_keeps_only_the_hash(db, topics):
    with db.session() as session:
        subscriber, _ = service.add_subscriber(session, email="Forget.Me@example.org",
                                               name="Forget Me", zip="58102",
                                               topics=["veterans"])
        service.set_status(session, subscriber, COMPLAINED, cause="spam report")
        sid = subscriber.id
    with db.session() as session:
        forget(session, session.get(Subscriber, sid))
    with db.session() as session:
        assert session.get(Subscriber, sid) is None
        assert session.scalar(select(func.count()).select_from(SubscriberTopic)) == 0
        assert service.is_suppressed(session, "forget.me@EXAMPLE.org")
        stored = session.scalars(select(Suppression.email_hash)).all()
        assert stored == [hashlib.sha256(b"forget.me@example.org").hexdigest()]
        causes = session.scalars(select(StatusChange.cause)).all()
        assert all("Forget" not in c and "forget.me" not in c for c in causes)
        assert all(c.subscriber_id is None for c in session.scalars(select(StatusChange)))
        # A later staff add (or import) cannot bring them back as active…
        with pytest.raises(service.Suppressed):
            service.add_subscriber(session, email="forget.me@example.org")
        # …but their own sign-up may start a pending subscription for them to confirm.
        pending, created = service.add_subscriber(session, email="forget.me@example.org",
                                                  status=PENDING, consent_source="web form")
        assert created and pending.status == PENDING


def test_forget_scrubs_delivery_records(db, topics):
    from mailer.campaigns.models import Campaign
    from mailer.delivery.records import Delivery, DeliveryStatus

    with db.session() as session:
        subscriber, _ = service.add_subscriber(session, email="gone@example.org")
        campaign = Campaign(subject="s", query='zip = "1"')
        session.add(campaign)
        session.flush()
        session.add_all([
            Delivery(campaign_id=campaign.id, subscriber_id=subscriber.id,
                     email=subscriber.email, status=DeliveryStatus.PENDING, attempts=0),
        ])
        session.flush()
        forget(session, subscriber)
    with db.session() as session:
        delivery = session.scalars(select(Delivery)).one()
        assert delivery.subscriber_id is None
        assert "gone" not in delivery.email
        assert delivery.status == DeliveryStatus.SKIPPED


def test_set_topics_replaces(db, topics):
    with db.session() as session:
        subscriber, _ = service.add_subscriber(session, email="a@example.org",
                                               topics=["veterans", "agriculture"])
        service.set_topics(session, subscriber, ["human-trafficking"])
        assert service.topic_slugs(session, subscriber) == ["human-trafficking"]
        with pytest.raises(NotFound):
            service.set_topics(session, subscriber, ["nope"])


def test_add_pending_writes_the_row_add_subscriber_would(db, topics):
    """The signup form's bound inserts: the same columns as ``add_subscriber`` for a new
    pending address (cleaned name, place from the ZIP, email key, consent, topics), and the
    address is found by search like any other."""
    sent = utcnow()
    with db.session() as session:
        new_id, name = service.add_pending(
            session, email="Pat.Doe@Example.org", name="  Pat   Doe ", zip="58102",
            topic_ids=[topics["veterans"], topics["agriculture"]], frequency="daily",
            consent_source="web form", consent_ip="10.0.0.9", confirm_sent_at=sent)
        service.add_subscriber(session, email="ref@example.org", name="Pat Doe", zip="58102",
                               topics=["agriculture", "veterans"], frequency="daily",
                               status=PENDING, consent_source="web form",
                               consent_ip="10.0.0.9", confirm_sent_at=sent)
    assert name == "Pat Doe"
    columns = ("name", "zip", "county", "state", "city", "frequency", "status",
               "consent_source", "consent_ip", "confirm_sent_at", "confirmed_at")
    with db.session() as session:
        new = session.get(Subscriber, new_id)
        ref = service.find_by_email(session, "ref@example.org")
        assert [getattr(new, c) for c in columns] == [getattr(ref, c) for c in columns]
        assert new.email == "pat.doe@example.org"
        assert new.email_key == email_key(email_hash("pat.doe@example.org"))
        assert new.county == "Cass" and new.consent_at and new.created_at and new.updated_at
        assert service.topic_slugs(session, new) == ["agriculture", "veterans"]
        found = search(session, Search(text="pat.doe"))
        assert [s.id for s in found] == [new_id]
