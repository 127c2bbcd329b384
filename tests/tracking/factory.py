"""Rows for tracking tests: a release, a campaign, subscribers and their deliveries, plus
SendGrid event objects shaped like the real webhook's."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from mailer.campaigns.models import Campaign
from mailer.delivery.records import Delivery
from mailer.ingest.models import Release
from subscribers.models import Subscriber, SubscriberTopic, Topic

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
_ids = itertools.count(1)


def make_campaign(session, *, status="sending", subject="Heitkamp bill passes") -> Campaign:
    n = next(_ids)
    release = Release(title=f"Release {n}", body="Body", source="test",
                      content_hash=f"{n:064d}")
    session.add(release)
    session.flush()
    campaign = Campaign(release_id=release.id, subject=subject, status=status,
                        query='topic = "human-trafficking"')
    session.add(campaign)
    session.flush()
    return campaign


def make_subscriber(session, email, *, county=None, status="active", topics=()) -> Subscriber:
    subscriber = Subscriber(email=email, county=county, status=status)
    session.add(subscriber)
    session.flush()
    for slug in topics:
        topic = session.query(Topic).filter_by(slug=slug).one_or_none()
        if topic is None:
            topic = Topic(slug=slug, name=slug.replace("-", " ").title())
            session.add(topic)
            session.flush()
        session.add(SubscriberTopic(subscriber_id=subscriber.id, topic_id=topic.id))
    session.flush()
    return subscriber


def make_delivery(session, campaign, subscriber, *, status="accepted",
                  message_id="MSGID", sent_at=T0) -> Delivery:
    delivery = Delivery(campaign_id=campaign.id, subscriber_id=subscriber.id,
                        email=subscriber.email, status=status,
                        provider_message_id=message_id, sent_at=sent_at, attempts=1)
    session.add(delivery)
    session.flush()
    return delivery


def sg_event(delivery, event, *, at=None, event_id=None, custom_args=True, **extra) -> dict:
    """One SendGrid event object about ``delivery`` (a Delivery row)."""
    at = at or T0 + timedelta(minutes=1)
    raw = {
        "email": delivery.email,
        "event": event,
        "timestamp": int(at.timestamp()),
        "sg_event_id": event_id or f"ev-{event}-{delivery.id}-{next(_ids)}",
        "sg_message_id": f"{delivery.provider_message_id}.filterdrecv-p3mdw1-5F5FC76C-9.0",
        "smtp-id": "<x@ismtpd0039p1iad1.sendgrid.net>",
    }
    if custom_args:
        raw["delivery_id"] = str(delivery.id)
        raw["campaign_id"] = str(delivery.campaign_id)
    raw.update(extra)
    return raw
