"""``run_scheduler`` in-process (as ``mailer run`` uses it): leads, polls feeds, stops."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from mailer.campaigns import service
from mailer.campaigns.models import CampaignStatus as S
from mailer.scheduling.leader import current_leader, make_leader
from mailer.scheduling.scheduler import run_scheduler
from mailer.storage.base import utcnow
from mailer.storage.db import Database, make_engine
from tests.campaigns.factory import add_audience, add_campaign
from tests.support.dbproxy import DbProxy


def test_run_scheduler_polls_feeds_starts_campaigns_and_stops(db, settings, monkeypatch):
    polls = []
    monkeypatch.setattr("mailer.scheduling.scheduler.poll_due_feeds",
                        lambda db_, settings_: polls.append(time.monotonic()))
    fast = settings.model_copy(update={"feed_poll_interval": 1, "scheduler_tick": 0.2,
                                       "leader_lease_seconds": 1.0})
    with db.session() as session:
        add_audience(session, 2)
        campaign = add_campaign(session, status=S.SCHEDULED, approved_by="bob",
                                scheduled_at=utcnow() + timedelta(seconds=1))
    stop = threading.Event()
    thread = threading.Thread(target=run_scheduler, args=(fast, stop, db))
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (len(polls) < 2 or _status(db, campaign.id)
                                               != S.SENDING):
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert len(polls) >= 2 and polls[1] - polls[0] >= 0.9  # every MAILER_FEED_POLL_INTERVAL
    assert _status(db, campaign.id) == S.SENDING
    # On the way out the lease (or lock) was released: another scheduler may lead at once.
    successor = make_leader(db, fast)
    try:
        assert successor.try_acquire()
    finally:
        successor.release()


def _status(db, campaign_id):
    with db.session() as session:
        return service.get_campaign(session, campaign_id).status


def test_an_error_while_leading_steps_down_and_retries(db, settings, monkeypatch):
    from mailer.scheduling import scheduler

    calls = []
    real_reconcile = scheduler.reconcile

    def flaky_reconcile(db_, settings_, **kwargs):
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return real_reconcile(db_, settings_, **kwargs)

    monkeypatch.setattr(scheduler, "reconcile", flaky_reconcile)
    fast = settings.model_copy(update={"scheduler_tick": 0.2, "leader_lease_seconds": 1.0})
    stop = threading.Event()
    thread = threading.Thread(target=run_scheduler, args=(fast, stop, db))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert len(calls) >= 3 and not thread.is_alive()  # led again after the failure


def test_a_stop_while_a_tick_runs_still_stops_the_thread(db, settings, monkeypatch):
    """APScheduler's shutdown holds its job-store lock while it waits for running jobs; a tick
    that was still reconciling when the stop came then blocked for ever on that lock in
    ``sync_jobs`` (the cause of the flaky "thread did not stop" above, on PostgreSQL, whose
    round trips made the window wide). The stop is set from inside the tick here."""
    from mailer.scheduling import scheduler

    stop = threading.Event()
    calls = []
    real_reconcile = scheduler.reconcile

    def reconcile_then_stop(db_, settings_, **kwargs):
        calls.append(threading.current_thread().name)
        if len(calls) == 2:  # the first tick (the first call is _lead's own)
            stop.set()
            time.sleep(0.5)  # the leading thread wakes and shuts APScheduler down meanwhile
        return real_reconcile(db_, settings_, **kwargs)

    monkeypatch.setattr(scheduler, "reconcile", reconcile_then_stop)
    fast = settings.model_copy(update={"scheduler_tick": 0.2, "leader_lease_seconds": 1.0})
    thread = threading.Thread(target=run_scheduler, args=(fast, stop, db), daemon=True)
    thread.start()
    assert stop.wait(15), "no tick ran"
    thread.join(timeout=10)
    assert not thread.is_alive(), "the scheduler thread hung in APScheduler's shutdown"
    assert len(calls) == 2


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_leader_steps_down_when_postgresql_goes_away_and_leads_again_after(db, settings):
    """Every connection of the scheduler is cut (and new ones refused) by a proxy: the leader
    steps down (APScheduler stopped, its lock gone with its connection) without the thread
    ending, and leads again once the database is back."""
    from mailer.scheduling import scheduler

    fast = settings.model_copy(update={"scheduler_tick": 0.2, "leader_lease_seconds": 1.0})
    stop = threading.Event()
    with DbProxy() as proxy:
        proxied = Database(make_engine(proxy.url(settings.database_url)))
        thread = threading.Thread(target=run_scheduler, args=(fast, stop, proxied), daemon=True)
        thread.start()
        try:
            _until(lambda: current_leader(db) is not None, "it to lead")
            first = current_leader(db)
            proxy.cut()
            _until(lambda: "leader" not in scheduler._runtime, "it to step down")
            assert thread.is_alive()
            _until(lambda: current_leader(db) is None, "the lock to go with its connection")
            proxy.restore()
            _until(lambda: current_leader(db) not in (None, first), "it to lead again")
            assert thread.is_alive() and "leader" in scheduler._runtime
        finally:
            stop.set()
            thread.join(timeout=20)
            proxied.dispose()
    assert not thread.is_alive()


def _until(condition, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)
