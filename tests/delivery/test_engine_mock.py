"""The engine's decisions, with a ``MockTransport`` deciding each batch's answer (the HTTP
path itself is covered against the SendGrid stand-in in test_engine.py)."""

import collections

from sqlalchemy import select

from mailer.campaigns.lifecycle import transition
from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as CS
from mailer.delivery.engine import send_campaign
from mailer.delivery.records import Delivery
from mailer.delivery.records import DeliveryStatus as DS
from mailer.transports.errors import AuthFailure, TemporaryFailure
from mailer.transports.mock import MockTransport, fail_batches, refuse
from subscribers.models import UNSUBSCRIBED
from tests.support.campaigns import add_subscribers, approved_campaign, set_subscriber_status


def rows(db, campaign_id):
    with db.session() as session:
        return session.execute(
            select(Delivery.email, Delivery.status, Delivery.last_error, Delivery.attempts,
                   Delivery.provider_message_id)
            .where(Delivery.campaign_id == campaign_id).order_by(Delivery.id)).all()


def one_at_a_time(settings):
    return settings.model_copy(update={"concurrency": 1, "batch_size": 10,
                                       "retry_backoff": 0.01, "retry_backoff_max": 0.02})


def assert_each_accepted_once(transport, db, campaign_id, expected):
    counts = collections.Counter(transport.accepted())
    assert max(counts.values()) == 1, "someone was sent twice"
    stored = {r.email for r in rows(db, campaign_id) if r.status == DS.ACCEPTED}
    assert set(counts) == stored and len(stored) == expected


def test_a_mock_transport_sees_every_recipient_once(db, settings):
    add_subscribers(db, 35)
    campaign_id = approved_campaign(db)
    transport = MockTransport()
    summary = send_campaign(db, one_at_a_time(settings), campaign_id, transport=transport)
    assert summary.status == CS.SENT and summary.accepted == 35
    assert [len(b.recipients) for b in transport.batches] == [10, 10, 10, 5]
    assert_each_accepted_once(transport, db, campaign_id, 35)
    assert all(r.provider_message_id.startswith("mock-") for r in rows(db, campaign_id))
    assert not transport.closed  # the caller's transport is the caller's to close


def test_unsubscribe_during_a_send_takes_effect_for_the_next_batch(db, settings):
    add_subscribers(db, 40)
    campaign_id = approved_campaign(db)

    def unsubscribe_after_first_batch(stats):
        if stats.accepted == 10:
            set_subscriber_status(db, "person35@example.org", UNSUBSCRIBED)

    transport = MockTransport()
    summary = send_campaign(db, one_at_a_time(settings), campaign_id, transport=transport,
                            progress=unsubscribe_after_first_batch)
    assert summary.status == CS.SENT and summary.skipped == 1
    assert "person35@example.org" not in transport.emails()
    skipped = [r for r in rows(db, campaign_id) if r.status == DS.SKIPPED]
    assert [r.email for r in skipped] == ["person35@example.org"]
    assert "unsubscribed" in skipped[0].last_error
    assert_each_accepted_once(transport, db, campaign_id, 39)


def test_pause_takes_effect_within_one_batch_and_resume_finishes(db, settings):
    add_subscribers(db, 60)
    campaign_id = approved_campaign(db)

    def pause_after_first_batch(stats):
        with db.session() as session:
            campaign = session.get(Campaign, campaign_id, with_for_update=True)
            if stats.accepted == 10 and campaign.status == CS.SENDING:
                transition(session, campaign, CS.PAUSED, by="press secretary")

    transport = MockTransport()
    fast = one_at_a_time(settings)
    summary = send_campaign(db, fast, campaign_id, transport=transport,
                            progress=pause_after_first_batch)
    assert summary.status == CS.PAUSED
    assert summary.accepted <= 20  # the batch in flight when the pause came, no more
    assert summary.pending == 60 - summary.accepted
    with db.session() as session:
        transition(session, session.get(Campaign, campaign_id), CS.SENDING, by="press secretary")
    assert send_campaign(db, fast, campaign_id, transport=transport).status == CS.SENT
    assert_each_accepted_once(transport, db, campaign_id, 60)


def test_a_refused_recipient_fails_alone_with_the_reason(db, settings):
    add_subscribers(db, 12)
    campaign_id = approved_campaign(db)
    transport = MockTransport(refuse({"person3@example.org": "550 mailbox unavailable"}))
    summary = send_campaign(db, one_at_a_time(settings), campaign_id, transport=transport)
    assert summary.status == CS.SENT and summary.accepted == 11 and summary.failed == 1
    failed = [r for r in rows(db, campaign_id) if r.status == DS.FAILED]
    assert [(r.email, r.last_error) for r in failed] == [
        ("person3@example.org", "550 mailbox unavailable")]


def test_a_temporary_failure_is_retried_and_nobody_goes_twice(db, settings):
    add_subscribers(db, 20)
    campaign_id = approved_campaign(db)
    transport = MockTransport(fail_batches([TemporaryFailure("503 try later", status=503)]))
    summary = send_campaign(db, one_at_a_time(settings), campaign_id, transport=transport)
    assert summary.status == CS.SENT and summary.accepted == 20
    assert len(transport.batches) == 3  # the refused batch once more, then the second
    assert_each_accepted_once(transport, db, campaign_id, 20)


def test_a_refused_key_pauses_at_once_with_the_reason(db, settings):
    add_subscribers(db, 30)
    campaign_id = approved_campaign(db)
    transport = MockTransport(fail_batches([AuthFailure("401: the API key was refused")] * 9))
    summary = send_campaign(db, one_at_a_time(settings), campaign_id, transport=transport)
    assert summary.status == CS.PAUSED and "API key" in (summary.reason or "")
    assert len(transport.batches) == 1 and summary.accepted == 0
    assert {r.status for r in rows(db, campaign_id)} == {DS.PENDING}
