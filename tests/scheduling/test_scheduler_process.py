"""The scheduler as the office runs it: real ``mailer scheduler`` processes against a SQLite
file (and PostgreSQL when MAILER_TEST_POSTGRES_URL is set), with short leases and ticks.

A campaign scheduled a few seconds ahead is started once, on time; one whose time passed while
no scheduler ran is started when one starts (or marked missed past the grace); two schedulers
started together start it once; killing the leader with SIGKILL lets the standby take over.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailer.campaigns import service
from mailer.campaigns.models import CampaignLog
from mailer.campaigns.models import CampaignStatus as S
from mailer.delivery.records import Delivery
from mailer.errors import InvalidTransition
from mailer.storage.base import utcnow
from tests.campaigns.factory import add_audience, add_campaign

pytestmark = pytest.mark.slow

LEASE = 1.0
_counties = itertools.count(1)
TICK = 0.3


class Schedulers:
    """Starts ``mailer scheduler`` processes; kills whatever is left at the end."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, name: str, *, command: tuple[str, ...] = ("scheduler",),
              **env_overrides: str) -> tuple[subprocess.Popen, Path]:
        env = {k: v for k, v in os.environ.items() if k.startswith("MAILER_") or k in (
            "PATH", "HOME", "LANG", "TZ", "PYTHONPATH")}
        env.update({"MAILER_LEADER_LEASE_SECONDS": str(LEASE),
                    "MAILER_SCHEDULER_TICK": str(TICK), "MAILER_FEED_POLL_INTERVAL": "3600",
                    **env_overrides})
        log = self.tmp_path / f"{name}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailer", *command], cwd=self.tmp_path, env=env,
            stdout=subprocess.DEVNULL, stderr=log.open("w"))
        self.procs.append((proc, log))
        return proc, log

    def stop_all(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def schedulers(settings, tmp_path):
    group = Schedulers(tmp_path)
    yield group
    group.stop_all()


def wait_for(condition, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def leading(log: Path) -> bool:
    return ": leading" in log.read_text()


def make_scheduled(db, *, seconds_from_now: float, audience: int = 3) -> int:
    county = f"County {next(_counties)}"  # each campaign its own audience
    with db.session() as session:
        add_audience(session, audience, county=county)
        campaign = add_campaign(session, status=S.SCHEDULED, approved_by="bob",
                                query=f'county = "{county}"',
                                scheduled_at=utcnow() + timedelta(seconds=seconds_from_now))
        return campaign.id


def status_of(db, campaign_id: int) -> str:
    with db.session() as session:
        return service.get_campaign(session, campaign_id).status


def starts_logged(db, campaign_id: int) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(CampaignLog).where(
            CampaignLog.campaign_id == campaign_id, CampaignLog.to_status == S.SENDING))


def drawn(db, campaign_id: int) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Delivery)
                              .where(Delivery.campaign_id == campaign_id))


def start_on_time(db, schedulers) -> int:
    _, log = schedulers.start("only")
    wait_for(lambda: leading(log), what="the scheduler to lead")
    campaign_id = make_scheduled(db, seconds_from_now=2.5)
    wait_for(lambda: status_of(db, campaign_id) in (S.SENDING, S.SENT),  # a worker may be quick
             what="the campaign to start")
    with db.session() as session:
        campaign = service.get_campaign(session, campaign_id)
        lateness = (campaign.started_at - campaign.scheduled_at).total_seconds()
    assert 0 <= lateness < 1.5, f"started {lateness:.2f}s after its time"
    time.sleep(3 * TICK)  # a few more ticks: nothing starts it again
    assert starts_logged(db, campaign_id) == 1 and drawn(db, campaign_id) == 3
    return campaign_id


def test_campaign_a_few_seconds_ahead_is_started_once_on_time(db, settings, schedulers):
    start_on_time(db, schedulers)


def test_started_campaign_is_then_sent_exactly_once_by_a_worker(db, settings, schedulers):
    schedulers.start("worker", command=("worker", "--poll", "0.2"))
    campaign_id = start_on_time(db, schedulers)
    wait_for(lambda: status_of(db, campaign_id) == S.SENT, what="the worker to finish")
    time.sleep(3 * TICK)
    assert starts_logged(db, campaign_id) == 1
    assert len(list(Path(settings.outbox_dir).rglob("*.eml"))) == 3  # one per recipient
    from mailer.delivery.engine import send_campaign

    with pytest.raises(InvalidTransition, match="already been sent"):
        send_campaign(db, settings, campaign_id)


def test_sends_missed_while_no_scheduler_ran_start_or_become_missed(db, settings, schedulers):
    recent = make_scheduled(db, seconds_from_now=-30)
    ancient = make_scheduled(db, seconds_from_now=-2 * 3600)
    _, log = schedulers.start("late", MAILER_MISFIRE_GRACE="3600")
    wait_for(lambda: status_of(db, recent) == S.SENDING, what="the overdue campaign to start")
    wait_for(lambda: status_of(db, ancient) == S.MISSED, what="the old one to be missed")
    with db.session() as session:
        reason = service.get_campaign(session, ancient).status_reason
    assert "MAILER_MISFIRE_GRACE" in reason and "no scheduler ran" in reason
    assert drawn(db, recent) == 3 and drawn(db, ancient) == 0


def test_two_schedulers_started_together_start_it_once(db, settings, schedulers):
    campaign_id = make_scheduled(db, seconds_from_now=3)
    # A lease long enough that a leader slowed down by a busy machine keeps it.
    (_, first), (_, second) = (schedulers.start("a", MAILER_LEADER_LEASE_SECONDS="4"),
                               schedulers.start("b", MAILER_LEADER_LEASE_SECONDS="4"))
    wait_for(lambda: status_of(db, campaign_id) == S.SENDING, what="the campaign to start")
    time.sleep(LEASE + 3 * TICK)
    assert starts_logged(db, campaign_id) == 1 and drawn(db, campaign_id) == 3
    assert [leading(first), leading(second)].count(True) == 1


def test_killing_the_leader_lets_the_standby_take_over(db, settings, schedulers):
    leader, leader_log = schedulers.start("leader")
    wait_for(lambda: leading(leader_log), what="the first scheduler to lead")
    standby, standby_log = schedulers.start("standby")
    wait_for(lambda: "waiting to lead" in standby_log.read_text(), what="the standby")
    time.sleep(LEASE)
    assert not leading(standby_log)
    os.kill(leader.pid, signal.SIGKILL)
    leader.wait(timeout=10)
    campaign_id = make_scheduled(db, seconds_from_now=1)
    wait_for(lambda: leading(standby_log), what="the standby to take over")
    wait_for(lambda: status_of(db, campaign_id) == S.SENDING, what="the campaign to start")
    assert starts_logged(db, campaign_id) == 1 and standby.poll() is None


def test_scheduler_stops_cleanly_on_sigterm_and_hands_over_at_once(db, settings, schedulers):
    # A long lease: the standby checks every 5 s, but the lease, renewed every 6.7 s, would
    # take at least 13 s after the leader's exit to expire.
    first, first_log = schedulers.start("first", MAILER_LEADER_LEASE_SECONDS="20")
    wait_for(lambda: leading(first_log), what="the first scheduler to lead")
    _, second_log = schedulers.start("second", MAILER_LEADER_LEASE_SECONDS="20")
    wait_for(lambda: "waiting to lead" in second_log.read_text(), what="the standby")
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=15) == 0
    # Released on the way out, not left to expire.
    wait_for(lambda: leading(second_log), timeout=10, what="the standby to take over")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_stalled_leader_steps_down_and_the_campaign_still_starts_once(
        db, settings, schedulers):
    # SQLite only: on PostgreSQL a stopped process keeps its connection, so keeps its lock.
    first, first_log = schedulers.start("first")
    wait_for(lambda: leading(first_log), what="the first scheduler to lead")
    _, second_log = schedulers.start("second")
    wait_for(lambda: "waiting to lead" in second_log.read_text(), what="the standby")
    os.kill(first.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: leading(second_log), what="the standby to take over the stale lease")
    finally:
        os.kill(first.pid, signal.SIGCONT)
    wait_for(lambda: "lost leadership" in first_log.read_text(), what="the old leader to notice")
    campaign_id = make_scheduled(db, seconds_from_now=1)
    wait_for(lambda: status_of(db, campaign_id) == S.SENDING, what="the campaign to start")
    time.sleep(LEASE + 3 * TICK)
    assert starts_logged(db, campaign_id) == 1 and drawn(db, campaign_id) == 3
    assert first.poll() is None  # back as a standby, not crashed
