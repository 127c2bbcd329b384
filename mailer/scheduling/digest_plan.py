"""Planning a digest run: which releases are candidates, and which subscribers get which.

The rules (who, since when, what they already received) are described in
``mailer.scheduling.digests``; this module computes them without writing anything, so a run
can plan, try to claim, and plan again from fresh state.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign
from mailer.delivery.records import Delivery
from mailer.delivery.records import DeliveryStatus as DS
from mailer.ingest.models import Release, ReleaseTopic
from mailer.scheduling.models import Digest
from mailer.storage.base import utcnow
from subscribers.models import Subscriber, SubscriberTopic, Topic
from subscribers.segments import audience_filter, compile_query

PERIODS = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
#: How far before its digest's window a subscriber's own "since" may reach (weekly -> daily
#: switchers are owed the days since their last weekly digest; nobody is owed a backlog).
LOOKBACK = PERIODS["weekly"]
#: Deliveries of a release's own campaign that did not reach the person: the digest still
#: carries that release for them.
NOT_RECEIVED = (DS.SKIPPED, DS.FAILED)


def quote(value: str) -> str:
    """A string literal of the segment query language."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def base_query(digest: Digest) -> str:
    """Who the digest is for (before topics): its query and the frequency they chose."""
    frequency = f"frequency = {quote(digest.frequency)}"
    return f"({digest.query}) and {frequency}" if digest.query else frequency


@dataclass(slots=True)
class DigestPlan:
    """Who gets what from one run: ``groups`` maps release ids (in release order) to the
    subscribers who get exactly those; ``planned_from`` maps each ``last_digest_at`` value read
    while planning to the planned subscribers who had it (what the claim checks)."""

    groups: dict[tuple[int, ...], array] = field(default_factory=dict)
    planned_from: dict[datetime | None, array] = field(default_factory=dict)

    @property
    def people(self) -> int:
        return sum(map(len, self.groups.values()))


def window_start(digest: Digest, now: datetime) -> datetime:
    """Where the digest's own window begins: its previous run, or one period ago."""
    return digest.last_run_at or now - PERIODS[digest.frequency]


def candidate_releases(session: Session, digest: Digest, now: datetime) -> list[Release]:
    """Every release some subscriber of ``digest`` may still be owed, oldest first: created
    after ``window_start - LOOKBACK`` and not after ``now``."""
    floor = window_start(digest, now) - LOOKBACK
    return list(session.scalars(
        select(Release).where(Release.created_at > floor, Release.created_at <= now)
        .order_by(Release.created_at, Release.id)))


def subscriber_since(last_digest_at: datetime | None, joined: datetime,
                     start: datetime) -> datetime:
    """The moment after which a subscriber is owed releases (see the module docstring)."""
    since = last_digest_at if last_digest_at is not None else max(joined, start)
    return max(since, start - LOOKBACK)


def plan_groups(session: Session, digest: Digest, releases: list[Release],
                now: datetime | None = None) -> DigestPlan:
    """Plan a run of ``digest`` over ``releases`` (from ``candidate_releases``): everyone in
    its audience who is owed something, found by streaming (subscriber, topic) pairs once."""

    now = now or utcnow()
    start = window_start(digest, now)
    topics = release_topics(session, releases)
    slugs_wanted = set().union(*topics.values()) if topics else set()
    topic_ids = dict(session.execute(select(Topic.id, Topic.slug)
                                     .where(Topic.slug.in_(slugs_wanted))).all())
    received = already_received(session, digest, releases)
    rows = session.execute(
        select(Subscriber.id, SubscriberTopic.topic_id, Subscriber.last_digest_at,
               func.coalesce(Subscriber.confirmed_at, Subscriber.created_at))
        .outerjoin(SubscriberTopic, and_(SubscriberTopic.subscriber_id == Subscriber.id,
                                         SubscriberTopic.topic_id.in_(list(topic_ids))))
        .where(audience_filter(compile_query(base_query(digest))))
        .order_by(Subscriber.id).execution_options(yield_per=10_000))
    created = [r.created_at for r in releases]
    chosen_for: dict[tuple, tuple[int, ...]] = {}
    plan = DigestPlan()

    def place(subscriber_id: int, follows: frozenset[str], last: datetime | None,
              joined: datetime) -> None:
        # Releases are sorted by creation, so what a person is owed is a suffix of them:
        # the cache key stays small (topic sets x suffixes), keeping planning linear.
        first = bisect_right(created, subscriber_since(last, joined, start))
        key = (follows, first, received.get(subscriber_id, frozenset()))
        chosen = chosen_for.get(key)
        if chosen is None:
            chosen = chosen_for[key] = tuple(
                r.id for r in releases[first:]
                if r.id not in key[2] and (not topics[r.id] or topics[r.id] & follows))
        if chosen:
            plan.groups.setdefault(chosen, array("q")).append(subscriber_id)
            plan.planned_from.setdefault(last, array("q")).append(subscriber_id)

    current, slugs, last, joined = None, set(), None, None
    for subscriber_id, topic_id, last_digest_at, joined_at in rows:
        if subscriber_id != current:
            if current is not None:
                place(current, frozenset(slugs), last, joined)
            current, slugs, last, joined = subscriber_id, set(), last_digest_at, joined_at
        if topic_id is not None:
            slugs.add(topic_ids[topic_id])
    if current is not None:
        place(current, frozenset(slugs), last, joined)
    return plan


def already_received(session: Session, digest: Digest,
                     releases: list[Release]) -> dict[int, frozenset[int]]:
    """Subscriber id -> the ``releases`` they already got as a release's own campaign.

    Release campaigns draw only ``immediate`` subscribers, so among people who now take this
    digest's frequency these are those who switched from immediate; their digest must not
    repeat what they already received. Reads the deliveries of the releases' campaigns only.
    """

    if not releases:
        return {}
    found: dict[int, set[int]] = {}
    for subscriber_id, release_id in session.execute(
            select(Delivery.subscriber_id, Campaign.release_id)
            .join(Campaign, Campaign.id == Delivery.campaign_id)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Campaign.release_id.in_([r.id for r in releases]),
                   Subscriber.frequency == digest.frequency,
                   Delivery.status.not_in(NOT_RECEIVED))):
        found.setdefault(subscriber_id, set()).add(release_id)
    return {k: frozenset(v) for k, v in found.items()}


def release_topics(session: Session, releases: list[Release]) -> dict[int, frozenset[str]]:
    """Release id -> the slugs of its topics (tags staff removed do not count)."""
    result: dict[int, set[str]] = {r.id: set() for r in releases}
    for release_id, slug in session.execute(
            select(ReleaseTopic.release_id, Topic.slug).join(Topic)
            .where(ReleaseTopic.release_id.in_(list(result)), ReleaseTopic.origin != "removed")):
        result[release_id].add(slug)
    return {k: frozenset(v) for k, v in result.items()}
