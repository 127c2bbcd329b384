"""Recurring digests: one email of the releases published since the last digest, per topic.

Design (exact; the delivery engine sends digest campaigns like any other):

- A run covers a *window*: releases created after the digest's previous run (``last_run_at``;
  on the first run, the last day or week) up to now. The window is claimed with a conditional
  UPDATE of ``last_run_at`` in the same transaction that creates the run's campaigns, so two
  runs (the scheduler and ``digests run``) never cover the same window twice, and a crash
  leaves either nothing or complete scheduled campaigns that the scheduler then starts.
- The audience is ``(<digest query>) and frequency = "<daily|weekly>"``, active and
  unsuppressed as for every send. A subscriber receives the window's releases that carry at
  least one of their topics, plus releases with no topic at all (general news); someone with
  nothing new receives nothing.
- Planning streams (subscriber, topic) pairs once and puts each subscriber in exactly one
  group: the set of releases they get. Each group becomes one campaign whose planned members
  are stored in ``digest_recipients``; its audience (``subscribers.segments.campaign_audience``)
  is those members who are, at send time, still in the digest's audience. Cost is linear in
  subscribers whatever the number of groups. The campaign keeps its release ids
  (``digest_release_ids``) for rendering (``compile_digest``).
- Digest campaigns are approved by the digest itself (its content is releases the office has
  already published), then go through the same send-time rules as any campaign: quiet hours
  and the election blackout refuse a run *before* its window is claimed, so the releases wait
  for the next run instead of being lost. ``digests run ID --override-blackout --reason``
  records an override on the run's campaigns.
"""

from __future__ import annotations

import logging
import time
from array import array
from datetime import datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import and_, insert, select, update
from sqlalchemy.orm import Session

from mailer.campaigns.lifecycle import transition
from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as S
from mailer.errors import InvalidInput, NotFound, PolicyRefusal
from mailer.ingest.models import Release, ReleaseTopic, Topic
from mailer.scheduling import policy
from mailer.scheduling.jobs import digest_job_id
from mailer.scheduling.models import Digest, DigestRecipient
from mailer.scheduling.times import DigestTime, parse_digest_at
from mailer.settings import Settings
from mailer.storage.base import utcnow
from mailer.storage.db import Database

log = logging.getLogger(__name__)

PERIODS = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
DIGEST_ACTOR = "digest"


# ---------------------------------------------------------------- definitions

def create_digest(
    session: Session, settings: Settings, *, frequency: str, at: str, query: str | None = None,
    name: str | None = None, template: str = "digest", by: str | None = None,
) -> Digest:
    """Define a recurring digest. Raises InvalidInput (bad time, taken name), QueryError,
    TemplateError, QuietHoursRefusal (its time falls inside quiet hours)."""
    when = parse_digest_at(at, frequency)
    name = " ".join((name or f"{frequency.capitalize()} digest").split())
    if session.scalar(select(Digest.id).where(Digest.name == name)) is not None:
        raise InvalidInput(f"a digest named {name!r} already exists; choose another --name")
    if query is not None:
        from subscribers.segments import compile_query

        compile_query(query)
    _check_template(template, settings)
    digest = Digest(name=name, frequency=frequency, at=str(when), query=query,
                    template=template, active=True, created_by=by)
    policy.check_quiet_hours(next_run_time(digest, settings), settings)
    session.add(digest)
    session.flush()
    return digest


def _check_template(template: str, settings: Settings) -> None:
    from mailer.render.check import assert_template_ok

    assert_template_ok(template, settings)


def list_digests(session: Session) -> list[Digest]:
    return list(session.scalars(select(Digest).order_by(Digest.id)))


def get_digest(session: Session, digest_id: int) -> Digest:
    """Raises NotFound."""
    digest = session.get(Digest, digest_id)
    if digest is None:
        raise NotFound(f"no digest with id {digest_id}")
    return digest


def set_active(session: Session, digest_id: int, active: bool) -> Digest:
    """Enable or disable a digest (the leading scheduler adds or drops its job within
    MAILER_SCHEDULER_TICK seconds). Raises NotFound."""
    digest = get_digest(session, digest_id)
    digest.active = active
    return digest


def digest_trigger(digest: Digest, settings: Settings) -> CronTrigger:
    """The cron trigger of ``digest`` in the office zone (APScheduler handles DST)."""
    when = parse_digest_at(digest.at, digest.frequency)
    return CronTrigger(day_of_week=when.weekday, hour=when.at.hour, minute=when.at.minute,
                       timezone=settings.zone)


def next_run_time(digest: Digest, settings: Settings, now: datetime | None = None) -> datetime:
    now = now or utcnow()
    return digest_trigger(digest, settings).get_next_fire_time(None, now.astimezone(settings.zone))


def digest_jobs(db: Database, settings: Settings) -> dict[str, tuple[CronTrigger, int]]:
    """``{job id: (trigger, digest id)}`` for every active digest (the scheduler's sync)."""
    with db.session() as session:
        digests = list(session.scalars(select(Digest).where(Digest.active.is_(True))))
    return {digest_job_id(d.id): (digest_trigger(d, settings), d.id) for d in digests}


def digest_to_dict(digest: Digest, settings: Settings) -> dict[str, Any]:
    upcoming = next_run_time(digest, settings) if digest.active else None
    return {
        "id": digest.id, "name": digest.name, "frequency": digest.frequency, "at": digest.at,
        "query": digest.query, "template": digest.template, "active": digest.active,
        "last_run_at": digest.last_run_at.isoformat() if digest.last_run_at else None,
        "last_result": digest.last_result,
        "next_run_at": upcoming.astimezone(settings.zone).isoformat() if upcoming else None,
        "next_run": policy.format_local(upcoming, settings) if upcoming else None,
    }


def digest_releases(session: Session, campaign: Campaign) -> list[Release]:
    """A digest campaign's releases in its order. Raises NotFound if one was deleted."""
    ids = list(campaign.digest_release_ids or [])
    found = {r.id: r for r in session.scalars(select(Release).where(Release.id.in_(ids)))}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"digest campaign {campaign.id}: release {missing[0]} no longer exists")
    return [found[i] for i in ids]


# ---------------------------------------------------------------- planning a run

def quote(value: str) -> str:
    """A string literal of the segment query language."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def base_query(digest: Digest) -> str:
    """Who the digest is for (before topics): its query and the frequency they chose."""
    frequency = f"frequency = {quote(digest.frequency)}"
    return f"({digest.query}) and {frequency}" if digest.query else frequency


def plan_groups(session: Session, digest: Digest, releases: list[Release]) -> dict[
        tuple[int, ...], array]:
    """``{release ids (in release order): subscriber ids}`` for everyone in the digest's
    audience who has something new, found by streaming (subscriber, topic) pairs once."""
    from subscribers.models import Subscriber, SubscriberTopic
    from subscribers.segments import audience_filter, compile_query

    topics = release_topics(session, releases)
    slugs_wanted = set().union(*topics.values()) if topics else set()
    topic_ids = dict(session.execute(select(Topic.id, Topic.slug)
                                     .where(Topic.slug.in_(slugs_wanted))).all())
    rows = session.execute(
        select(Subscriber.id, SubscriberTopic.topic_id)
        .outerjoin(SubscriberTopic, and_(SubscriberTopic.subscriber_id == Subscriber.id,
                                         SubscriberTopic.topic_id.in_(list(topic_ids))))
        .where(audience_filter(compile_query(base_query(digest))))
        .order_by(Subscriber.id).execution_options(yield_per=10_000))
    chosen_for: dict[frozenset[str], tuple[int, ...]] = {}
    groups: dict[tuple[int, ...], array] = {}

    def place(subscriber_id: int, follows: frozenset[str]) -> None:
        chosen = chosen_for.get(follows)
        if chosen is None:
            chosen = chosen_for[follows] = tuple(
                r.id for r in releases if not topics[r.id] or topics[r.id] & follows)
        if chosen:
            groups.setdefault(chosen, array("q")).append(subscriber_id)

    current, slugs = None, set()
    for subscriber_id, topic_id in rows:
        if subscriber_id != current:
            if current is not None:
                place(current, frozenset(slugs))
            current, slugs = subscriber_id, set()
        if topic_id is not None:
            slugs.add(topic_ids[topic_id])
    if current is not None:
        place(current, frozenset(slugs))
    return groups


def release_topics(session: Session, releases: list[Release]) -> dict[int, frozenset[str]]:
    """Release id -> the slugs of its topics (tags staff removed do not count)."""
    result: dict[int, set[str]] = {r.id: set() for r in releases}
    for release_id, slug in session.execute(
            select(ReleaseTopic.release_id, Topic.slug).join(Topic)
            .where(ReleaseTopic.release_id.in_(list(result)), ReleaseTopic.origin != "removed")):
        result[release_id].add(slug)
    return {k: frozenset(v) for k, v in result.items()}


# ---------------------------------------------------------------- running

def run_digest(
    db: Database, settings: Settings, digest_id: int, *, now: datetime | None = None,
    by: str | None = None, override_reason: str | None = None,
) -> dict[str, Any]:
    """Run a digest now: claim its window, create one campaign per group, start them.

    Returns ``{"digest_id", "since", "until", "releases", "campaigns": [{"id", "releases",
    "expected", "outcome"}]}``. Raises NotFound, PolicyRefusal (quiet hours, blackout: the
    window is not claimed, so its releases go out with the next run).
    """
    now = now or utcnow()
    # Plan first, reading only (on SQLite a long write transaction would hold up senders);
    # then claim the window and write the campaigns in one short transaction.
    with db.session() as session:
        digest = get_digest(session, digest_id)
        policy.check_quiet_hours(now, settings)
        election = policy.blackout_election(now, settings)
        if election is not None and not override_reason:
            raise policy.BlackoutRefusal(policy.blackout_message(election, settings), election)
        previous = digest.last_run_at
        since = previous or now - PERIODS[digest.frequency]
        releases = list(session.scalars(
            select(Release).where(Release.created_at > since, Release.created_at <= now)
            .order_by(Release.created_at, Release.id)))
        groups = plan_groups(session, digest, releases) if releases else {}
    result = {"digest_id": digest_id, "since": since.isoformat(), "until": now.isoformat(),
              "releases": len(releases), "campaigns": []}
    with db.session() as session:
        digest = get_digest(session, digest_id)
        if not _claim_window(session, digest, previous, now):
            return {**result, "releases": 0, "note": "another run covered this window"}
        planned = []  # biggest group first
        for ids in sorted(groups, key=lambda ids: (-len(groups[ids]), ids)):
            campaign_id = _create_campaign(session, digest, ids, now, by=by,
                                           override_reason=override_reason, settings=settings)
            _add_members(session, campaign_id, groups[ids])
            planned.append({"id": campaign_id, "releases": list(ids),
                            "expected": len(groups[ids])})
        if planned:
            _refresh_statistics(session)
        people = sum(item["expected"] for item in planned)
        digest.last_result = (f"{len(releases)} new release(s); {people} subscriber(s) in "
                              f"{len(planned)} campaign(s)")
    outcomes = _start_all(db, settings, [item["id"] for item in planned])
    result["campaigns"] = [{**item, "outcome": outcomes[item["id"]]} for item in planned]
    return result


def _claim_window(session: Session, digest: Digest, previous: datetime | None,
                  now: datetime) -> bool:
    """Move ``last_run_at`` from ``previous`` to ``now``; False when another run moved it
    first (then this run must send nothing)."""
    same = Digest.last_run_at.is_(None) if previous is None else Digest.last_run_at == previous
    result = session.execute(update(Digest).where(Digest.id == digest.id, same)
                             .values(last_run_at=now).execution_options(
                                 synchronize_session=False))
    if result.rowcount != 1:
        return False
    session.refresh(digest)
    return True


def _refresh_statistics(session: Session) -> None:
    """Tell the query planner how many members a group has and how big the subscriber table
    is, so each group's audience is drawn by walking its members (an index lookup each)
    rather than by scanning every subscriber once per group. About a second per million
    subscribers on SQLite; PostgreSQL samples."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        # Full passes: a sample of either table misleads (rows sit in index order, so the
        # first thousand show one status, one campaign).
        connection.exec_driver_sql("PRAGMA analysis_limit = 0")
        started = time.perf_counter()
        connection.exec_driver_sql("ANALYZE subscribers")
        connection.exec_driver_sql("ANALYZE digest_recipients")
        log.info("planner statistics refreshed in %.2f s", time.perf_counter() - started)
    elif connection.dialect.name == "postgresql":
        connection.exec_driver_sql("ANALYZE digest_recipients")


def _add_members(session: Session, campaign_id: int, subscriber_ids: array) -> None:
    for start in range(0, len(subscriber_ids), 10_000):
        session.execute(insert(DigestRecipient), [
            {"campaign_id": campaign_id, "subscriber_id": s}
            for s in subscriber_ids[start:start + 10_000]])


def _create_campaign(
    session: Session, digest: Digest, release_ids: tuple[int, ...], now: datetime,
    *, by: str | None, override_reason: str | None, settings: Settings,
) -> int:
    count = len(release_ids)
    campaign = Campaign(
        kind="digest", digest_id=digest.id, query=base_query(digest), template=digest.template,
        subject=f"{digest.name}: {count} new release{'s' if count != 1 else ''}",
        created_by=f"{DIGEST_ACTOR} {digest.name}", status=S.DRAFT,
        digest_release_ids=list(release_ids),
    )
    session.add(campaign)
    session.flush()
    transition(session, campaign, S.APPROVED, by=DIGEST_ACTOR,
               reason="digest of releases the office has published")
    campaign.approved_by, campaign.approved_at = DIGEST_ACTOR, now
    if override_reason and policy.blackout_election(now, settings) is not None:
        campaign.blackout_override_by = by
        campaign.blackout_override_reason = override_reason
    campaign.scheduled_at = now
    transition(session, campaign, S.SCHEDULED, by=by or DIGEST_ACTOR,
               reason=f"digest run {policy.format_local(now, settings)}")
    return campaign.id


def _start_all(db: Database, settings: Settings, campaign_ids: list[int]) -> dict[int, str]:
    from mailer.scheduling.scheduler import _start_lock, start_scheduled_campaign

    outcomes = {}
    for campaign_id in campaign_ids:
        with _start_lock:
            outcomes[campaign_id] = start_scheduled_campaign(db, settings, campaign_id)
    return outcomes


def record_refusal(db: Database, digest_id: int, refusal: PolicyRefusal) -> None:
    """Note on the digest why its run was refused (the scheduler's job calls this)."""
    with db.session() as session:
        get_digest(session, digest_id).last_result = f"not run: {refusal}"


__all__ = ["DigestTime", "create_digest", "digest_releases", "list_digests", "run_digest"]
