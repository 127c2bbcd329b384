"""Sending through a database outage, with real parts: a real PostgreSQL behind a TCP proxy
that cuts every connection (tests/support/dbproxy.py), real ``mailer`` subprocesses, the
SendGrid stand-in. The provider's answers must never be lost with a connection: every
recipient gets exactly one copy and no row ends in doubt.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as CS
from mailer.delivery import journal
from mailer.delivery.engine import send_campaign
from mailer.delivery.records import Delivery
from mailer.delivery.records import DeliveryStatus as DS
from mailer.storage.db import Database, make_engine
from tests.conftest import ROOT
from tests.delivery.conftest import KEY
from tests.support.campaigns import add_subscribers, approved_campaign
from tests.support.dbproxy import DbProxy
from tests.support.sendgrid_standin import SendGridStandIn

pytestmark = pytest.mark.slow
CONCURRENCY = 2  # per process: the bound on requests that may still start after a cut


def _env(settings, standin, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update({
        "MAILER_DATABASE_URL": database_url, "MAILER_SECRET_KEY": "test-secret-key",
        "MAILER_TRANSPORT": "sendgrid", "MAILER_SENDGRID_API_KEY": KEY,
        "MAILER_SENDGRID_HOST": standin.url, "MAILER_SENDGRID_TIMEOUT": "10",
        "MAILER_BATCH_SIZE": "20", "MAILER_CONCURRENCY": str(CONCURRENCY),
        "MAILER_SEND_PROCESSES": "1", "MAILER_LEASE_SECONDS": "60",
        # Anything in doubt is held, and a held row pauses the send: a row that went in doubt
        # fails the test instead of being re-sent quietly.
        "MAILER_IN_DOUBT_POLICY": "hold", "MAILER_IN_DOUBT_GRACE": "0",
        "MAILER_DB_RETRY_MAX": "0.5", "MAILER_DB_OUTAGE_SECONDS": "120",
        "MAILER_JOURNAL_DIR": str(Path(settings.outbox_dir).parent / "journal"),
        "MAILER_TEMPLATES_DIR": str(ROOT / "templates"),
        "MAILER_POSTAL_ADDRESS": "123 Hart Senate Office Building, Washington, DC 20510",
        "MAILER_PUBLIC_URL": "https://news.senator.example.gov",
    })
    return env


def _spawn(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:  # a file, not a pipe: nobody must read it for it to go on
        return subprocess.Popen([sys.executable, "-m", "mailer", *args], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.02)


def _status(db, campaign_id: int) -> str:
    with db.session() as session:
        return session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))


def _rows(db, campaign_id: int) -> dict[int, str]:
    with db.session() as session:
        return dict(session.execute(select(Delivery.id, Delivery.status)
                                    .where(Delivery.campaign_id == campaign_id)).all())


def _assert_each_sent_once(standin, db, campaign_id: int, expected: int) -> None:
    counts = standin.delivery_counts()
    twice = {k: v for k, v in counts.items() if v > 1}
    assert not twice, f"sent more than once: {twice}"
    emails = standin.emails()
    assert len(emails) == len(set(emails)) == expected  # no address got two copies
    rows = _rows(db, campaign_id)
    assert len(rows) == len(counts) == expected
    assert {int(k) for k in counts} == set(rows)
    assert set(rows.values()) == {DS.ACCEPTED}, "a row is not accepted (in doubt?)"


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_postgresql_outage_mid_send_loses_no_answer_and_keeps_the_worker(db, settings,
                                                                          tmp_path):
    """``campaigns send`` and a ``mailer worker`` share a 3,000-recipient send through the
    proxy; every database connection is cut (and new ones refused) for 3 s mid-send."""
    add_subscribers(db, 3000)
    campaign_id = approved_campaign(db)
    with SendGridStandIn(api_key=KEY, latency_ms=120, max_seconds=240) as standin, \
            DbProxy() as proxy:
        env = _env(settings, standin, proxy.url(settings.database_url))
        worker = _spawn(["worker", "--poll", "0.2"], env, tmp_path / "worker.log")
        try:
            _wait(lambda: b"worker started" in (tmp_path / "worker.log").read_bytes(), 60,
                  "the worker to start")
            sender = _spawn(["campaigns", "send", str(campaign_id), "--json"], env,
                            tmp_path / "send.log")
            _wait(lambda: standin.accepted_count >= 600, 90, "the send to get going")
            proxy.cut()
            requests_at_cut = standin.requests
            time.sleep(3)  # the outage (a fault's length, not a measurement)
            started_in_outage = standin.requests - requests_at_cut
            assert proxy.refused > 0, "nobody tried the database during the cut"
            proxy.restore()
            assert sender.wait(180) == 0, (tmp_path / "send.log").read_text()[-2000:]
            assert worker.poll() is None, "the worker exited: " + (
                tmp_path / "worker.log").read_text()[-2000:]
        finally:
            worker.send_signal(signal.SIGTERM)
            worker_code = worker.wait(60)
    # Only batches claimed before the cut could still be handed off during it.
    assert started_in_outage <= 2 * CONCURRENCY
    assert worker_code == 0
    send_log = (tmp_path / "send.log").read_text()
    assert "database unreachable" in send_log
    assert "database unreachable" in (tmp_path / "worker.log").read_text()
    assert _status(db, campaign_id) == CS.SENT
    _assert_each_sent_once(standin, db, campaign_id, 3000)


class _Send(threading.Thread):
    """``send_campaign`` on a thread (``options`` passed on); ``error`` is what it raised,
    ``notes`` its progress notes."""

    def __init__(self, db, settings, campaign_id, stop=None, **options):
        super().__init__(daemon=True)
        self.args_, self.options = (db, settings, campaign_id), options
        self.stop = stop or threading.Event()
        self.notes: list[str] = []
        self.error: BaseException | None = None
        self.summary = None

    def run(self) -> None:
        try:
            self.summary = send_campaign(*self.args_, stop=self.stop, progress=self._note,
                                         **self.options)
        except BaseException as exc:  # the test looks at it
            self.error = exc

    def _note(self, stats) -> None:
        note = getattr(stats, "note", None)
        if note:
            self.notes.append(note)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_outcomes_unwritable_at_stop_are_journaled_and_recorded_by_the_next_start(
        db, sg_settings, standin, tmp_path):
    """The database goes away while batches are in flight, then the sender is told to stop:
    it journals the provider's answers and exits. The next start records them before
    in-doubt recovery, so nobody is sent a second copy (with MAILER_IN_DOUBT_GRACE=0 and
    ``resend``, rows left in doubt would be re-sent at once)."""
    add_subscribers(db, 200)
    campaign_id = approved_campaign(db)
    settings = sg_settings.model_copy(update={"journal_dir": tmp_path / "journal",
                                              "db_retry_max": 0.2, "concurrency": 3})
    standin.latency_ms = 600
    with DbProxy() as proxy:
        proxied = Database(make_engine(proxy.url(settings.database_url)))
        send = _Send(proxied, settings, campaign_id)
        send.start()
        _wait(lambda: standin.requests >= 6, 60, "batches in flight")
        proxy.cut()  # their answers come back to a sender without a database
        _wait(lambda: send.notes, 30, "the progress line to say so")
        send.stop.set()
        send.join(60)
        proxied.dispose()
    assert not send.is_alive()
    assert isinstance(send.error, OperationalError)  # it gave up and said why
    held_note = r"database unreachable, retrying in [\d.]+ s; \d+ batch(es)?' outcomes held"
    assert re.fullmatch(held_note, send.notes[-1]), send.notes[-1]
    files = journal.files(settings)
    assert len(files) == 1
    journaled = journal.read(files[0])
    held_ids = {i for out in journaled for i in out.claim.ids}
    assert journaled and all(out.all_accepted for out in journaled)
    rows = _rows(db, campaign_id)
    assert {rows[i] for i in held_ids} == {DS.SENDING}  # the database never heard

    standin.latency_ms = 0
    summary = send_campaign(db, settings, campaign_id)  # the next start
    assert summary.status == CS.SENT
    _assert_each_sent_once(standin, db, campaign_id, 200)
    assert journal.files(settings) == []  # applied, then removed


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_sqlite_database_locked_mid_send_sends_everyone_once(db, sg_settings, standin,
                                                               settings, caplog):
    """Another connection holds SQLite's write lock for 2 s while the send runs, longer than
    the sender's busy timeout (cut to 0.2 s here, so the lock outlasts it without a 30 s
    test): its writes fail with "database is locked" and it must wait that out."""
    add_subscribers(db, 1500)
    campaign_id = approved_campaign(db)
    standin.latency_ms = 20
    engine = make_engine(settings.database_url)
    event.listen(engine, "connect",  # after make_engine's own pragmas, so this one wins
                 lambda connection, _record: connection.execute("PRAGMA busy_timeout=200"))
    send = _Send(Database(engine), sg_settings.model_copy(update={"db_retry_max": 0.2}),
                 campaign_id)
    send.start()
    _wait(lambda: standin.accepted_count >= 300, 60, "the send to get going")
    other = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), timeout=30)
    try:
        other.execute("BEGIN EXCLUSIVE")
        locked_at = standin.accepted_count
        time.sleep(2)  # the lock's length, not a measurement
        other.rollback()
    finally:
        other.close()
    send.join(120)
    assert not send.is_alive() and send.error is None, send.error
    assert locked_at < 1500, "the send finished before the lock; proved nothing"
    assert "database is locked" in caplog.text  # it was felt, and waited out
    assert send.summary.status == CS.SENT
    _assert_each_sent_once(standin, db, campaign_id, 1500)
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_worker_starting_records_a_journal_before_sending_anything(db, settings, tmp_path):
    """A sender (another process, still within its lease) journaled the provider's answers
    for a whole batch; a worker starting now records them instead of leaving the rows
    ``sending`` (and later in doubt), and hands nothing to its transport."""
    from mailer.delivery import claims
    from mailer.delivery.engine import start_campaign
    from mailer.delivery.handoff import Outcome
    from mailer.delivery.worker import run_worker
    from mailer.transports.mock import MockTransport

    add_subscribers(db, 10)
    campaign_id = approved_campaign(db)
    own = settings.model_copy(update={"journal_dir": tmp_path / "journal"})
    start_campaign(db, own, campaign_id)
    with db.session() as session:
        claim = claims.claim_batch(session, campaign_id, size=10, worker="elsewhere:1:gone",
                                   lease_seconds=600)
    journal.write(own, [Outcome(claim, all_accepted=True, message_id="sg-1")],
                  worker="elsewhere:1:gone")
    transport = MockTransport()
    run_worker(db, own, threading.Event(), transport=transport, poll_interval=0.01,
               max_idle_polls=2)
    assert transport.batches == []
    assert set(_rows(db, campaign_id).values()) == {DS.ACCEPTED}
    assert _status(db, campaign_id) == CS.SENT
    assert journal.files(own) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("whole_batch", [True, False])
def test_applying_a_journal_moves_only_rows_still_open_and_is_idempotent(db, settings,
                                                                          tmp_path, whole_batch):
    """Rows that moved on since (delivered by a provider event; re-queued by recovery) keep
    their state and times; applying the same journal twice changes nothing more."""
    from sqlalchemy import update

    from mailer.delivery import claims
    from mailer.delivery.engine import start_campaign
    from mailer.delivery.handoff import Outcome
    from mailer.delivery.writer import apply_journals
    from mailer.storage.base import utcnow

    add_subscribers(db, 4)
    campaign_id = approved_campaign(db)
    own = settings.model_copy(update={"journal_dir": tmp_path / "journal"})
    start_campaign(db, own, campaign_id)
    with db.session() as session:
        claim = claims.claim_batch(session, campaign_id, size=4, worker="w:1:x",
                                   lease_seconds=600)
    delivered, requeued, *still_open = claim.ids
    earlier = utcnow().replace(microsecond=0)
    with db.session() as session:
        session.execute(update(Delivery).where(Delivery.id == delivered).values(
            status=DS.DELIVERED, sent_at=earlier, provider_message_id="sg-first"))
        session.execute(update(Delivery).where(Delivery.id == requeued).values(
            status=DS.PENDING, batch_id=None))
    out = (Outcome(claim, all_accepted=True, message_id="sg-late") if whole_batch else
           Outcome(claim, results=[(i, True, "sg-late", None) for i in claim.ids]))
    for _ in range(2):
        journal.write(own, [out], worker="w:1:x")
        assert apply_journals(db, own) == 1
    with db.session() as session:
        rows = {r.id: r for r in session.scalars(select(Delivery).where(
            Delivery.campaign_id == campaign_id))}
    assert (rows[delivered].status, rows[delivered].provider_message_id) == (
        DS.DELIVERED, "sg-first")
    assert rows[delivered].sent_at == earlier
    assert rows[requeued].status == DS.PENDING
    assert {rows[i].status for i in still_open} == {DS.ACCEPTED}
    assert {rows[i].provider_message_id for i in still_open} == {"sg-late"}
    assert journal.files(own) == []
