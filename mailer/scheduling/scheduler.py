"""``mailer scheduler``: starts scheduled campaigns on time, runs digests, polls feeds.

The campaign row is the source of truth (``status = scheduled``, ``scheduled_at``); APScheduler
(3.11, SQLAlchemyJobStore in the same database, table ``apscheduler_jobs``) is the alarm clock.
Only the leader (see ``mailer.scheduling.leader``) runs APScheduler, and it:

1. on taking over, *reconciles*: every scheduled campaign whose time passed while no scheduler
   ran is started if it is at most MAILER_MISFIRE_GRACE seconds late, else it becomes
   ``missed`` with the reason (shown by ``campaigns show`` / ``campaigns status``);
2. every MAILER_SCHEDULER_TICK seconds mirrors scheduled campaigns and active digests into job
   store jobs (id ``campaign-<id>`` / ``digest-<id>``, ``replace_existing``, module-level
   functions, ``misfire_grace_time = MAILER_MISFIRE_GRACE``, ``coalesce``) and reconciles again,
   so nothing APScheduler dropped as a misfire is dropped silently;
3. starts a campaign only through ``start_scheduled_campaign``: under a process lock, re-reads
   the campaign, re-checks the rules at send time (``policy.check_send_allowed``), confirms it
   still leads, then hands over to ``mailer.delivery.engine.start_campaign``, which draws the
   audience and moves the campaign to ``sending`` (the workers send it). A campaign is thus
   started at most once however many paths (job, reconcile, two schedulers) reach it.

When the database goes away (``mailer.storage.outage``) the leader steps down cleanly (its
lock or lease cannot be vouched for), stands by, and leads again once the database answers;
the process never exits over it.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import select

from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as S
from mailer.errors import MailerError, PolicyRefusal
from mailer.ingest.feeds import poll_due_feeds
from mailer.scheduling.digests import digest_jobs, record_refusal, run_digest
from mailer.scheduling.jobs import JOB_TABLE, campaign_job_id
from mailer.scheduling.leader import make_leader
from mailer.scheduling.starting import start_lock, start_scheduled_campaign
from mailer.settings import Settings, get_settings
from mailer.storage import outage
from mailer.storage.base import utcnow
from mailer.storage.db import Database, open_database

log = logging.getLogger(__name__)

#: What the job functions run against; set by ``run_scheduler`` (a job store holds only a
#: function's import path and its arguments, never live objects).
_runtime: dict[str, Any] = {}
def run_scheduled_campaign(campaign_id: int) -> None:
    """The job APScheduler runs at a campaign's time (module-level: the job store keeps only
    this function's path). Starts it only while this process leads."""
    db, settings = _runtime_db_settings()
    with start_lock:
        leader = _runtime.get("leader")
        if leader is not None and not leader.is_leader():
            log.warning("not leader any more; leaving campaign %s to the new leader", campaign_id)
            return
        outcome = start_scheduled_campaign(db, settings, campaign_id)
    log.info("campaign %s: %s", campaign_id, outcome)


def run_digest_job(digest_id: int) -> None:
    """The job APScheduler runs at a digest's time."""

    db, settings = _runtime_db_settings()
    leader = _runtime.get("leader")
    if leader is not None and not leader.is_leader():
        return
    try:
        result = run_digest(db, settings, digest_id)
    except PolicyRefusal as refusal:  # the releases wait for the next run
        log.warning("digest %s not run: %s", digest_id, refusal)
        record_refusal(db, digest_id, refusal)
        return
    except MailerError as exc:
        log.error("digest %s failed: %s", digest_id, exc)
        return
    log.info("digest %s: %s release(s), %s campaign(s)", digest_id, result["releases"],
             len(result["campaigns"]))


def _runtime_db_settings() -> tuple[Database, Settings]:
    if "db" not in _runtime:  # a job run outside run_scheduler (tests, a one-off)
        _runtime["settings"] = get_settings()
        _runtime["db"] = open_database(_runtime["settings"])
    return _runtime["db"], _runtime["settings"]


# ---------------------------------------------------------------- keeping jobs in step

def reconcile(db: Database, settings: Settings, *, now: datetime | None = None) -> dict[int, str]:
    """Deal with every scheduled campaign whose time has come: start it, or mark it missed.
    Returns ``{campaign id: outcome}``."""
    now = now or utcnow()
    with db.session() as session:
        due = list(session.scalars(
            select(Campaign.id)
            .where(Campaign.status == S.SCHEDULED, Campaign.scheduled_at <= now)
            .order_by(Campaign.scheduled_at)))
    outcomes = {}
    for campaign_id in due:
        with start_lock:
            outcomes[campaign_id] = start_scheduled_campaign(db, settings, campaign_id, now=now)
        log.info("campaign %s (overdue): %s", campaign_id, outcomes[campaign_id])
    return outcomes


def sync_jobs(scheduler: BackgroundScheduler, db: Database, settings: Settings) -> None:
    """Make the job store mirror the database: one job per future scheduled campaign at its
    time, one per active digest; jobs of anything else removed."""
    now = utcnow()
    with db.session() as session:
        rows = session.execute(select(Campaign.id, Campaign.scheduled_at).where(
            Campaign.status == S.SCHEDULED, Campaign.scheduled_at > now)).all()
    wanted = {campaign_job_id(cid): (cid, at) for cid, at in rows}
    existing = {job.id: job for job in scheduler.get_jobs(jobstore="default")}
    for job_id, (campaign_id, at) in wanted.items():
        job = existing.get(job_id)
        if job is not None and job.next_run_time is not None and abs(
                (job.next_run_time - at).total_seconds()) < 0.001:
            continue
        scheduler.add_job(
            run_scheduled_campaign, DateTrigger(run_date=at), args=[campaign_id], id=job_id,
            name=f"campaign {campaign_id}", replace_existing=True, jobstore="default",
            misfire_grace_time=settings.misfire_grace, coalesce=True,
        )

    digests = digest_jobs(db, settings)
    for job_id, (trigger, digest_id) in digests.items():
        job = existing.get(job_id)
        if job is not None and _same_cron(job.trigger, trigger):
            continue
        scheduler.add_job(
            run_digest_job, trigger, args=[digest_id], id=job_id, name=f"digest {digest_id}",
            replace_existing=True, jobstore="default",
            misfire_grace_time=settings.misfire_grace, coalesce=True,
        )
    for job_id in existing.keys() - wanted.keys() - digests.keys():
        try:
            scheduler.remove_job(job_id, jobstore="default")
        except JobLookupError:
            pass


def _same_cron(current, wanted) -> bool:
    """Same fields and zone (``str`` of a CronTrigger leaves the zone out)."""
    return (str(current) == str(wanted)
            and str(getattr(current, "timezone", "")) == str(wanted.timezone))


class _Clock:
    """Keeps the tick's calls into APScheduler and APScheduler's shutdown apart.

    ``shutdown(wait=True)`` holds APScheduler's job-store lock while it waits for running jobs;
    a tick still running then blocks forever on that lock in ``get_jobs``/``add_job`` (the
    thread never stopped). ``close()`` waits for a running tick to finish and makes later ones
    return at once, so shutdown never waits on a tick that waits on it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.closed = False

    def close(self) -> None:
        with self.lock:
            self.closed = True


def _tick(scheduler: BackgroundScheduler, db: Database, settings: Settings,
          clock: _Clock | None = None) -> None:
    clock = clock or _Clock()
    with clock.lock:
        if clock.closed:
            return
        try:
            leader = _runtime.get("leader")
            if leader is not None and not leader.is_leader():
                return  # lost the lease; the main loop notices and steps down
            reconcile(db, settings)
            sync_jobs(scheduler, db, settings)
        except Exception as exc:  # a database hiccup must not stop the clock: the next tick
            _log_failure("scheduler tick failed", exc)  # retries


def _poll_feeds(db: Database, settings: Settings) -> None:
    try:
        poll_due_feeds(db, settings)
    except Exception as exc:
        _log_failure("feed polling failed", exc)


def _log_failure(what: str, exc: Exception) -> None:
    """An unreachable database is one line (it is expected to pass); anything else a trace."""
    if outage.is_outage(exc):
        log.warning("%s: %s (%s)", what, outage.trouble(exc), outage.reason(exc))
    else:
        log.exception(what)


# ---------------------------------------------------------------- the process

def build_scheduler(db: Database, settings: Settings) -> BackgroundScheduler:
    """APScheduler with the persistent store (our jobs) and a memory store (this process's
    own housekeeping, which must not outlive it)."""
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=db.engine, tablename=JOB_TABLE),
                   "local": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(4)},
        job_defaults={"coalesce": True, "misfire_grace_time": settings.misfire_grace,
                      "max_instances": 1},
        timezone=settings.zone,
    )


def _lead(db: Database, settings: Settings, leader, stop: threading.Event) -> None:
    """Run APScheduler while this process leads; return when stopped or leadership is lost."""
    _runtime.update(db=db, settings=settings, leader=leader)
    scheduler = build_scheduler(db, settings)
    clock = _Clock()
    try:
        reconcile(db, settings)  # before APScheduler sees (and might drop) overdue jobs
        scheduler.start()
        sync_jobs(scheduler, db, settings)
        scheduler.add_job(_tick, "interval", seconds=settings.scheduler_tick, id="tick",
                          args=[scheduler, db, settings, clock], jobstore="local",
                          misfire_grace_time=None, coalesce=True)
        scheduler.add_job(_poll_feeds, "interval", seconds=settings.feed_poll_interval,
                          id="feeds", args=[db, settings], jobstore="local",
                          next_run_time=utcnow() + timedelta(seconds=1),
                          misfire_grace_time=None, coalesce=True)
        renew_every = settings.leader_lease_seconds / 3
        renewed = time.monotonic()
        while not stop.wait(renew_every):
            if not _renew(leader, renewed, settings.leader_lease_seconds):
                log.warning("scheduler: lost leadership; back to standby")
                break
            renewed = time.monotonic()
    finally:
        clock.close()
        if scheduler.running:
            scheduler.shutdown(wait=True)
        _runtime.pop("leader", None)


def _renew(leader, renewed: float, lease_seconds: float) -> bool:
    """Renew; False when leadership is lost. A renewal that fails keeps the lead only while
    the last good one still covers us (no standby can take over before its lease runs out;
    ``is_leader()`` fences every start meanwhile); past that, step down."""
    try:
        return leader.renew()
    except Exception as exc:
        if time.monotonic() - renewed + lease_seconds / 3 >= lease_seconds:
            log.warning("scheduler: could not renew leadership for a whole lease (%s); "
                        "stepping down", outage.reason(exc))
            return False
        log.warning("scheduler: could not renew leadership: %s", outage.reason(exc))
        return True


def standby_poll_seconds(settings: Settings) -> float:
    return min(max(settings.leader_lease_seconds / 4, 0.1), 5.0)


def run_scheduler(settings: Settings, stop: threading.Event, db: Database | None = None) -> None:
    """Run until ``stop`` is set: wait for leadership, then schedule; if leadership is lost,
    wait again. Used by ``mailer scheduler`` and ``mailer run``."""
    own_db = db is None
    db = db or open_database(settings)
    leader = make_leader(db, settings)
    log.info("scheduler %s: waiting to lead", leader.holder)
    try:
        while not stop.is_set():
            try:
                acquired = leader.try_acquire()
            except Exception as exc:  # e.g. the database is away: stand by, look again
                log.warning("scheduler: %s", outage.reason(exc))
                acquired = False
            if acquired:
                log.info("scheduler %s: leading", leader.holder)
                try:
                    _lead(db, settings, leader, stop)
                except Exception as exc:  # e.g. the database went away: step down, try again
                    _log_failure(f"scheduler {leader.holder}: stepping down after an error",
                                 exc)
                    leader.release()
                    stop.wait(standby_poll_seconds(settings))
            else:
                stop.wait(standby_poll_seconds(settings))
    finally:
        leader.release()
        _runtime.clear()
        if own_db:
            db.dispose()
