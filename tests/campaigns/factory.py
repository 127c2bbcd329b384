"""Rows for campaign and scheduling tests: releases with topics, subscribers, campaigns."""

from __future__ import annotations

import itertools
from datetime import datetime

from sqlalchemy import select

from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as S
from mailer.ingest.models import Release, ReleaseTopic
from mailer.storage.base import utcnow
from subscribers.models import Subscriber, SubscriberTopic, Topic

_ids = itertools.count(1)


def topic(session, slug: str) -> Topic:
    found = session.scalar(select(Topic).where(Topic.slug == slug))
    if found is None:
        found = Topic(slug=slug, name=slug.replace("-", " ").title())
        session.add(found)
        session.flush()
    return found


def add_release(session, *, title: str | None = None, topics=(),
                created_at: datetime | None = None) -> Release:
    n = next(_ids)
    release = Release(title=title or f"Senator acts on item {n}", body="First paragraph.\n\n"
                      "Second paragraph.", source="test", content_hash=f"{n:064x}",
                      created_at=created_at or utcnow())
    session.add(release)
    session.flush()
    for slug in topics:
        session.add(ReleaseTopic(release_id=release.id, topic_id=topic(session, slug).id,
                                 origin="manual"))
    session.flush()
    return release


def add_subscriber(session, email: str, *, topics=(), frequency: str = "immediate",
                   status: str = "active", county: str | None = None) -> Subscriber:
    subscriber = Subscriber(email=email, frequency=frequency, status=status, county=county)
    session.add(subscriber)
    session.flush()
    for slug in topics:
        session.add(SubscriberTopic(subscriber_id=subscriber.id, topic_id=topic(session, slug).id))
    session.flush()
    return subscriber


def add_campaign(session, *, status: str = S.DRAFT, created_by: str | None = "alice",
                 approved_by: str | None = None, query: str = 'county = "Cass"',
                 scheduled_at: datetime | None = None, release=None) -> Campaign:
    release = release or add_release(session)
    campaign = Campaign(release_id=release.id, subject=release.title, query=query,
                        template="press_release", status=status, created_by=created_by,
                        approved_by=approved_by, approved_at=utcnow() if approved_by else None,
                        scheduled_at=scheduled_at)
    session.add(campaign)
    session.flush()
    return campaign


def add_audience(session, count: int = 3, *, county: str = "Cass") -> list[Subscriber]:
    n = next(_ids)
    return [add_subscriber(session, f"person{n}-{i}@example.org", county=county)
            for i in range(count)]
