"""Exactly once through kill -9, injected faults and four workers.

A real ``mailer campaigns send ID`` subprocess is killed with SIGKILL at random moments while
it sends to the SendGrid stand-in; the stand-in posts signed ``processed`` events to the real
web app's ``/webhooks/sendgrid`` (served by uvicorn in this process), exactly as SendGrid
would. Whatever the timing, every recipient must be accepted by the stand-in exactly once.
"""

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy import func, select

from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as CS
from mailer.delivery.engine import start_campaign
from mailer.delivery.records import Delivery
from mailer.delivery.records import DeliveryStatus as DS
from mailer.web.app import create_app
from tests.conftest import ROOT
from tests.delivery.conftest import KEY
from tests.support.campaigns import add_subscribers, approved_campaign
from tests.support.sendgrid_standin import SendGridStandIn

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebApp:
    """The real FastAPI app on loopback (for the signed Event Webhook)."""

    def __init__(self, settings, db):
        self.port = _free_port()
        config = uvicorn.Config(create_app(settings, db), host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def webhook(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/sendgrid"


@pytest.fixture
def crash_rig(settings, db):
    """(stand-in posting events to the web app, env for sender subprocesses)."""
    standin = SendGridStandIn(api_key=KEY, latency_ms=40, max_seconds=240)
    web_settings = settings.model_copy(update={
        "sendgrid_webhook_public_key": SecretStr(standin.public_key_b64)})
    with standin, WebApp(web_settings, db) as web:
        standin.webhook_url = web.webhook
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
        env.update({
            "MAILER_DATABASE_URL": settings.database_url, "MAILER_SECRET_KEY": "test-secret-key",
            "MAILER_TRANSPORT": "sendgrid", "MAILER_SENDGRID_API_KEY": KEY,
            "MAILER_SENDGRID_HOST": standin.url, "MAILER_SENDGRID_TIMEOUT": "5",
            "MAILER_BATCH_SIZE": "20", "MAILER_CONCURRENCY": "4",
            # A fixed four in flight: these tests time kills against a slow stand-in, and a
            # window grown to hide its latency would finish the send before the kill.
            "MAILER_MAX_IN_FLIGHT": "4",
            "MAILER_IN_DOUBT_GRACE": "3", "MAILER_RETRY_BACKOFF": "0.05",
            "MAILER_RETRY_BACKOFF_MAX": "0.3", "MAILER_RETRY_ATTEMPTS": "6",
            "MAILER_MAX_CONSECUTIVE_ERRORS": "50", "MAILER_LEASE_SECONDS": "30",
            "MAILER_TEMPLATES_DIR": str(ROOT / "templates"),
            "MAILER_POSTAL_ADDRESS": "123 Hart Senate Office Building, Washington, DC 20510",
            "MAILER_PUBLIC_URL": "https://news.senator.example.gov",
            "MAILER_SENDGRID_WEBHOOK_PUBLIC_KEY": standin.public_key_b64,
            # every `campaigns send` here spreads over a helper process, so the kills also
            # land on spread sends (`mailer worker` never spreads)
            "MAILER_SEND_PROCESSES": "2",
        })
        yield standin, env


def _sender(env, campaign_id):
    return subprocess.Popen([sys.executable, "-m", "mailer", "campaigns", "send",
                             str(campaign_id), "--json"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _status(db, campaign_id) -> str:
    with db.session() as session:
        return session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))


def _kill_and_resume(db, standin, env, campaign_id, *, seed: int, kills: int) -> int:
    """Kill the sender ``kills`` times at random moments of its sending (after a random
    number of further recipients were accepted: before, during or after a batch's record),
    then let one run finish. Returns how many kills landed while the campaign was sending."""
    rng = random.Random(seed)
    landed = 0
    for _ in range(kills):
        proc = _sender(env, campaign_id)
        target = standin.accepted_count + rng.randint(1, 300)
        deadline = time.monotonic() + 60
        while proc.poll() is None and standin.accepted_count < target \
                and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.001, 0.01))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            landed += _status(db, campaign_id) == CS.SENDING
        proc.wait(30)
    final = _sender(env, campaign_id)
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()
    return landed


def _assert_exactly_once(standin, db, campaign_id, expected):
    counts = standin.delivery_counts()
    twice = {k: v for k, v in counts.items() if v > 1}
    assert not twice, f"sent more than once: {twice}"
    with db.session() as session:
        statuses = dict(session.execute(
            select(Delivery.id, Delivery.status).where(Delivery.campaign_id == campaign_id)
        ).all())
    assert len(counts) == expected == len(statuses)
    assert set(statuses.values()) == {DS.ACCEPTED}
    assert {int(k) for k in counts} == set(statuses)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_kill_9_at_random_moments_never_sends_twice(crash_rig, db, settings):
    standin, env = crash_rig
    add_subscribers(db, 1500)
    campaign_id = approved_campaign(db)
    landed = _kill_and_resume(db, standin, env, campaign_id, seed=os.getpid(), kills=4)
    assert _status(db, campaign_id) == CS.SENT
    assert landed >= 3, "kills did not land mid-send; the test proved nothing"
    _assert_exactly_once(standin, db, campaign_id, 1500)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_kill_9_under_injected_429_5xx_and_resets(crash_rig, db, settings):
    standin, env = crash_rig
    add_subscribers(db, 1200)
    campaign_id = approved_campaign(db)
    for kind, count in [("429", 3), ("500", 4), ("reset", 3), ("503", 3), ("reset", 2),
                        ("delay", 5)]:
        standin.inject(kind, count, reset_in=0.5, delay_ms=300)
    _kill_and_resume(db, standin, env, campaign_id, seed=os.getpid() + 1, kills=3)
    assert _status(db, campaign_id) == CS.SENT
    statuses = standin.snapshot()["statuses"]
    assert statuses.get("429", 0) >= 1 and statuses.get("reset", 0) >= 1
    _assert_exactly_once(standin, db, campaign_id, 1200)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_four_workers_on_postgresql_send_each_recipient_once(crash_rig, db, settings):
    standin, env = crash_rig
    add_subscribers(db, 2000)
    campaign_id = approved_campaign(db)
    workers = [subprocess.Popen([sys.executable, "-m", "mailer", "worker", "--poll", "0.2"],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE) for _ in range(4)]
    for worker in workers:  # all four are up and polling before there is work to share
        assert b"worker started" in worker.stderr.readline()
    start_campaign(db, settings, campaign_id)
    try:
        deadline = time.monotonic() + 90
        while _status(db, campaign_id) != CS.SENT and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        outputs = [w.communicate(timeout=30) for w in workers]
    assert _status(db, campaign_id) == CS.SENT
    assert all(w.returncode == 0 for w in workers), [o[1].decode()[-500:] for o in outputs]
    with db.session() as session:
        by_worker = session.execute(
            select(Delivery.worker).where(Delivery.campaign_id == campaign_id)).scalars().all()
    assert len({w.rsplit(":", 1)[0] for w in by_worker}) >= 2, "the work was not shared"
    _assert_exactly_once(standin, db, campaign_id, 2000)


#: Stand-in latency for the spread-send tests: long enough that the parent cannot finish the
#: whole send alone before its helper process has started (python start-up on a busy machine).
SLOW_MS = 250


def _helper_pids(db, proc) -> set[int]:
    """The pids of the sender's helper processes, once they have claimed something."""
    helpers: set[int] = set()
    deadline = time.monotonic() + 60
    while not helpers and time.monotonic() < deadline:
        time.sleep(0.05)
        with db.session() as session:
            workers = session.scalars(select(Delivery.worker).distinct()
                                      .where(Delivery.worker.is_not(None))).all()
        helpers = {int(w.split(":")[1]) for w in workers} - {proc.pid}
    assert helpers, "the send was not spread over a second process"
    return helpers


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_kill_9_of_a_spread_send_stops_its_helper_and_never_sends_twice(crash_rig, db,
                                                                       settings):
    standin, env = crash_rig
    add_subscribers(db, 1500)
    campaign_id = approved_campaign(db)
    standin.latency_ms = SLOW_MS
    proc = _sender(env, campaign_id)
    helpers = _helper_pids(db, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert _status(db, campaign_id) == CS.SENDING, "finished before the kill; proved nothing"
    deadline = time.monotonic() + 20  # its batches in flight finish and are recorded
    while any(_alive(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in helpers), "the helper went on sending alone"
    with db.session() as session:
        left = session.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.campaign_id == campaign_id, Delivery.status == DS.PENDING))
    assert left > 0, "the helper sent the rest alone instead of stopping with its parent"
    standin.latency_ms = 40
    final = _sender(env, campaign_id)
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()
    assert _status(db, campaign_id) == CS.SENT
    _assert_exactly_once(standin, db, campaign_id, 1500)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_ctrl_c_stops_a_spread_send_cleanly(crash_rig, db, settings):
    standin, env = crash_rig
    add_subscribers(db, 1500)
    campaign_id = approved_campaign(db)
    standin.latency_ms = SLOW_MS
    proc = subprocess.Popen([sys.executable, "-m", "mailer", "campaigns", "send",
                             str(campaign_id), "--json"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    helpers = _helper_pids(db, proc)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in helpers)
    with db.session() as session:
        left = dict(session.execute(select(Delivery.status, func.count())
                                    .where(Delivery.campaign_id == campaign_id)
                                    .group_by(Delivery.status)).all())
    # Every batch in flight finished and was recorded: nothing stranded in sending/in doubt.
    assert set(left) <= {DS.PENDING, DS.ACCEPTED} and left.get(DS.PENDING), left
    final = _sender(env, campaign_id)
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()
    _assert_exactly_once(standin, db, campaign_id, 1500)
