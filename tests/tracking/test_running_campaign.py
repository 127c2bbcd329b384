"""Webhook evidence acts on a campaign while it is sending (the delivery engine against the
SendGrid stand-in, events posted through the signed webhook): a bounced subscriber is skipped
by the very next batch, and complaints pause the send."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as CS
from mailer.delivery.engine import send_campaign
from mailer.delivery.records import Delivery
from mailer.delivery.records import DeliveryStatus as DS
from mailer.tracking.webhook import PATH, SIGNATURE_HEADER, TIMESTAMP_HEADER
from mailer.web.app import create_app
from subscribers.models import StatusChange, Subscriber
from tests.support.campaigns import add_subscribers, approved_campaign
from tests.tracking.factory import make_campaign, make_delivery, sg_event

KEY = "SG.test-key"


@pytest.fixture
def live(settings, db, standin):
    """(settings, webhook client): sending to the stand-in, webhook signed by its key."""
    settings = settings.model_copy(update=dict(
        transport="sendgrid", sendgrid_api_key=SecretStr(KEY), sendgrid_host=standin.url,
        sendgrid_timeout=5.0, batch_size=10, concurrency=1, in_doubt_grace=0,
        sendgrid_webhook_public_key=SecretStr(standin.public_key_b64), webhook_max_age=300))
    return settings, TestClient(create_app(settings, db))


def post(client, standin, events) -> int:
    body = json.dumps(events).encode()
    timestamp = str(int(time.time()))
    return client.post(PATH, content=body, headers={
        SIGNATURE_HEADER: standin.sign(timestamp, body), TIMESTAMP_HEADER: timestamp,
        "Content-Type": "application/json"}).status_code


def test_bounced_subscriber_is_skipped_by_the_next_batch(db, live, standin):
    settings, client = live
    add_subscribers(db, 40)
    with db.session() as session:
        # person35 got last week's newsletter; its hard bounce arrives in the middle of
        # today's send.
        earlier = make_campaign(session, status="sent", subject="Last week")
        person = session.scalar(select(Subscriber)
                                .where(Subscriber.email == "person35@example.org"))
        old_delivery = make_delivery(session, earlier, person, message_id="OLDMSG")
    campaign_id = approved_campaign(db)
    answers = []

    def bounce_after_first_batch(stats):
        if stats.accepted == 10 and not answers:
            answers.append(post(client, standin, [sg_event(
                old_delivery, "bounce", type="bounce", reason="550 5.1.1 mailbox unavailable")]))

    summary = send_campaign(db, settings, campaign_id, progress=bounce_after_first_batch)
    assert answers == [204]
    assert summary.status == CS.SENT and summary.skipped == 1
    assert "person35@example.org" not in standin.emails()
    assert len(standin.emails()) == 39
    with db.session() as session:
        row = session.scalar(select(Delivery).where(Delivery.campaign_id == campaign_id,
                                                    Delivery.email == "person35@example.org"))
        assert row.status == DS.SKIPPED and "bounced" in row.last_error
        person = session.get(Subscriber, row.subscriber_id)
        assert person.status == "bounced"
        cause = session.scalars(select(StatusChange.cause)
                                .where(StatusChange.subscriber_id == person.id)).one()
    assert "hard bounce" in cause and f"delivery {old_delivery.id}" in cause


def test_complaints_pause_the_running_send(db, live, standin):
    settings, client = live
    add_subscribers(db, 40)
    campaign_id = approved_campaign(db)
    answers = []

    def complaint_after_first_batch(stats):
        if stats.accepted == 10 and not answers:
            events = [{**event, "event": "spamreport", "sg_event_id": f"spam-{i}"}
                      for i, event in enumerate(standin.processed_events(standin.accepted[:1]))]
            answers.append(post(client, standin, events))

    summary = send_campaign(db, settings, campaign_id, progress=complaint_after_first_batch)
    assert answers == [204]
    assert summary.status == CS.PAUSED
    with db.session() as session:
        campaign = session.get(Campaign, campaign_id)
    assert "reputation-guard" in campaign.status_reason
    # The pause took effect within a batch: at most one more batch was already in flight.
    assert len(standin.emails()) <= 20
    assert len(standin.emails()) == len(set(standin.emails()))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_every_handoff_is_logged_as_json(db, live, standin, caplog):
    import logging

    from mailer.tracking.logs import LOGGER_NAME

    settings, _ = live
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    add_subscribers(db, 25)
    campaign_id = approved_campaign(db)
    send_campaign(db, settings, campaign_id)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == LOGGER_NAME]
    handoffs = [line for line in lines if line["kind"] == "handoff"]
    # Batches go in flight together, so they may be recorded in any order.
    assert sorted(h["recipients"] for h in handoffs) == [5, 10, 10]
    assert all(h["campaign"] == campaign_id and h["outcome"] == "accepted" for h in handoffs)
    assert all(h["message_id"] and h["batch"] for h in handoffs)
    assert "example.org" not in caplog.text.replace("***@example.org", "")
