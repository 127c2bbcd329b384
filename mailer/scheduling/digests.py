"""Recurring digests: one email per subscriber of the releases published since THEIR last
digest, per their topics.

Design (exact; the delivery engine sends digest campaigns like any other):

- Who: ``(<digest query>) and frequency = "<daily|weekly>"``, active and not suppressed, as
  for every send. A subscriber is owed the releases that carry at least one of their topics,
  plus releases with no topic at all (general news); someone owed nothing receives nothing.
- Since when, per subscriber (``subscriber_since``): their ``last_digest_at`` -- the run time
  of the last digest planned for them, by ANY digest -- so a switch from weekly to daily, or a
  person in two digests whose queries overlap, never gets a release twice nor misses one. When
  it is null (never had a digest) it is the later of when they joined (``confirmed_at``, else
  ``created_at``) and the digest's own window start (its previous run, or one period ago): a
  newcomer gets what was published since they joined, never a backlog. Either way it reaches
  back at most ``LOOKBACK`` (a week) before the digest's window start. Releases someone
  already got as the release's own campaign (they were ``immediate`` then) are left out;
  those whose delivery was skipped or failed are kept in.
- Planning streams (subscriber, topic, last_digest_at, joined) rows once and puts each
  subscriber in exactly one group: the set of releases they get. What a person is owed is a
  suffix of the (time-ordered) candidate releases filtered by topics, so the distinct
  combinations stay few and the cost is linear in subscribers whatever the number of groups.
  Each group becomes one campaign whose planned members are stored in ``digest_recipients``;
  its audience (``subscribers.segments.campaign_audience``) is those members who are, at send
  time, still in the digest's audience. The campaign keeps its release ids
  (``digest_release_ids``) for rendering (``compile_digest``).
- Claiming, in the one transaction that creates the run's campaigns: (1) the digest's window,
  a conditional UPDATE of ``last_run_at``, so two runs of one digest never both send; (2) the
  members, a conditional UPDATE of each planned subscriber's ``last_digest_at`` from the value
  planning read to the run time, only while they still take this frequency. If any of them
  moved (another digest claimed them, they changed frequency), the transaction rolls back and
  the run plans again from fresh state (``CLAIM_ATTEMPTS`` times). So a crash leaves nothing
  or complete scheduled campaigns (which the scheduler then starts), and a re-run or a second
  digest never re-plans the same releases for the same person.
- Why at planning, not when a delivery is accepted: between planning and acceptance a second
  run would re-plan the same releases (doubling), and the delivery engine owns acceptance.
  The cost, documented: a planned member whose delivery is then skipped (unsubscribed,
  suppressed, paused, no longer in the digest's query or frequency when drawn) or fails is
  not re-offered those releases by a later digest; the campaign's ``deliveries`` row records
  what became of it (``campaigns status``), and ``digest_recipients`` who it was planned for.
  A failed hand-off is retried by the delivery engine like any send.
- Digest campaigns are approved by the digest itself (its content is releases the office has
  already published), then go through the same send-time rules as any campaign: quiet hours
  and the election blackout refuse a run *before* anything is claimed, so the releases wait
  for the next run instead of being lost. ``digests run ID --override-blackout --reason``
  records an override on the run's campaigns.
"""

from __future__ import annotations

import logging
import time
from array import array
from datetime import datetime
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from mailer.campaigns.lifecycle import approve_and_schedule
from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as S
from mailer.errors import InvalidInput, NotFound, PolicyRefusal
from mailer.render.check import assert_template_ok
from mailer.scheduling import policy
from mailer.scheduling.digest_plan import (
    DigestPlan,
    base_query,
    candidate_releases,
    plan_groups,
    window_start,
)
from mailer.scheduling.jobs import digest_job_id
from mailer.scheduling.models import Digest, DigestRecipient
from mailer.scheduling.starting import start_lock, start_scheduled_campaign
from mailer.scheduling.times import DigestTime, parse_digest_at
from mailer.settings import Settings
from mailer.storage.base import utcnow
from mailer.storage.db import Database
from subscribers.models import Subscriber
from subscribers.segments import compile_query, count

log = logging.getLogger(__name__)

CLAIM_ATTEMPTS = 3
CLAIM_CHUNK = 5_000
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
        compile_query(query)
    _check_template(template, settings)
    digest = Digest(name=name, frequency=frequency, at=str(when), query=query,
                    template=template, active=True, created_by=by)
    policy.check_quiet_hours(next_run_time(digest, settings), settings)
    session.add(digest)
    session.flush()
    return digest


def _check_template(template: str, settings: Settings) -> None:
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


def run_outlook(session: Session, digest: Digest, now: datetime | None = None
                ) -> dict[str, int]:
    """What running ``digest`` now would reach, for the question asked before a run:
    ``{"people", "releases"}``: the people in the digest a send would reach (active,
    unsuppressed, of its frequency; those owed nothing then get nothing, so at most this
    many emails) and the releases published since its window began."""
    now = now or utcnow()
    start = window_start(digest, now)
    releases = sum(1 for r in candidate_releases(session, digest, now) if r.created_at > start)
    return {"people": count(session, query=base_query(digest)), "releases": releases}


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


# ---------------------------------------------------------------- running

def run_digest(
    db: Database, settings: Settings, digest_id: int, *, now: datetime | None = None,
    by: str | None = None, override_reason: str | None = None,
) -> dict[str, Any]:
    """Run a digest now: plan, claim its window and its members, create one campaign per
    group, start them.

    Returns ``{"digest_id", "since", "until", "releases", "campaigns": [{"id", "releases",
    "expected", "outcome"}]}`` (``since`` is the digest's own window start; ``releases`` the
    number of distinct releases sent). Raises NotFound, PolicyRefusal (quiet hours, blackout:
    nothing is claimed, so the releases go out with the next run), InvalidInput when other
    digest runs kept changing the same subscribers through every attempt.
    """
    now = now or utcnow()
    for _attempt in range(CLAIM_ATTEMPTS):
        # Plan first, reading only (on SQLite a long write transaction would hold up
        # senders); then claim and write the campaigns in one short transaction.
        with db.session() as session:
            digest = get_digest(session, digest_id)
            policy.check_quiet_hours(now, settings)
            election = policy.blackout_election(now, settings)
            if election is not None and not override_reason:
                raise policy.BlackoutRefusal(policy.blackout_message(election, settings),
                                             election)
            previous, since = digest.last_run_at, window_start(digest, now)
            releases = candidate_releases(session, digest, now)
            plan = plan_groups(session, digest, releases, now) if releases else DigestPlan()
        result = {"digest_id": digest_id, "since": since.isoformat(),
                  "until": now.isoformat(), "releases": len(set().union(*plan.groups)),
                  "campaigns": []}
        try:
            with db.session() as session:
                planned = _write_run(session, settings, digest_id, previous, plan, now,
                                     by=by, override_reason=override_reason)
        except _MembersMoved:
            log.info("digest %s: another run changed its subscribers; planning again",
                     digest_id)
            continue
        if planned is None:
            return {**result, "releases": 0, "note": "another run covered this window"}
        outcomes = _start_all(db, settings, [item["id"] for item in planned])
        result["campaigns"] = [{**item, "outcome": outcomes[item["id"]]} for item in planned]
        return result
    raise InvalidInput(f"digest {digest_id}: other digest runs kept changing the same "
                       "subscribers; run it again")


class _MembersMoved(Exception):
    """A planned subscriber's ``last_digest_at`` or frequency changed since planning."""


def _write_run(
    session: Session, settings: Settings, digest_id: int, previous: datetime | None,
    plan: DigestPlan, now: datetime, *, by: str | None, override_reason: str | None,
) -> list[dict[str, Any]] | None:
    """Claim the window and the members, create the campaigns; None when another run of this
    digest claimed the window first. Raises _MembersMoved (the caller's transaction then
    rolls back, so nothing of this run remains)."""
    digest = get_digest(session, digest_id)
    if not _claim_window(session, digest, previous, now):
        return None
    if not _claim_members(session, digest, plan, now):
        raise _MembersMoved
    planned = []  # biggest group first
    groups = plan.groups
    for ids in sorted(groups, key=lambda ids: (-len(groups[ids]), ids)):
        campaign_id = _create_campaign(session, digest, ids, now, by=by,
                                       override_reason=override_reason, settings=settings)
        _add_members(session, campaign_id, groups[ids])
        planned.append({"id": campaign_id, "releases": list(ids),
                        "expected": len(groups[ids])})
    if planned:
        _refresh_statistics(session)
    sent = len(set().union(*groups))
    digest.last_result = (f"{sent} new release(s); {plan.people} subscriber(s) in "
                          f"{len(planned)} campaign(s)")
    return planned


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


def _claim_members(session: Session, digest: Digest, plan: DigestPlan, now: datetime) -> bool:
    """Move every planned subscriber's ``last_digest_at`` from the value planning read to
    ``now``, only while it still has that value and they still take this digest's frequency;
    False when any of them changed (another digest run, or a preference change, came first).

    On PostgreSQL a concurrent claim of the same rows waits for this transaction and then
    re-checks the condition, so of two overlapping runs exactly one claims each person.
    ``updated_at`` is kept: receiving a digest is not a change of the subscriber's record.
    """

    for last, ids in plan.planned_from.items():
        same = (Subscriber.last_digest_at.is_(None) if last is None
                else Subscriber.last_digest_at == last)
        for first in range(0, len(ids), CLAIM_CHUNK):
            chunk = list(ids[first:first + CLAIM_CHUNK])
            moved = session.execute(
                update(Subscriber)
                .where(Subscriber.id.in_(chunk), same,
                       Subscriber.frequency == digest.frequency)
                .values(last_digest_at=now, updated_at=Subscriber.updated_at)
                .execution_options(synchronize_session=False))
            if moved.rowcount != len(chunk):
                return False
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
    approve_and_schedule(session, campaign, by=by or DIGEST_ACTOR, at=now,
                         approval="digest of releases the office has published",
                         reason=f"digest run {policy.format_local(now, settings)}")
    campaign.approved_by = DIGEST_ACTOR
    if override_reason and policy.blackout_election(now, settings) is not None:
        campaign.blackout_override_by = by
        campaign.blackout_override_reason = override_reason
    return campaign.id


def _start_all(db: Database, settings: Settings, campaign_ids: list[int]) -> dict[int, str]:
    outcomes = {}
    for campaign_id in campaign_ids:
        with start_lock:
            outcomes[campaign_id] = start_scheduled_campaign(db, settings, campaign_id)
    return outcomes


def record_refusal(db: Database, digest_id: int, refusal: PolicyRefusal) -> None:
    """Note on the digest why its run was refused (the scheduler's job calls this)."""
    with db.session() as session:
        get_digest(session, digest_id).last_result = f"not run: {refusal}"


__all__ = ["DigestTime", "create_digest", "list_digests", "run_digest"]
