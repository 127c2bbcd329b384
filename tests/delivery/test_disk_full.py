"""A full disk under SQLite, for real: the database (and, where a test says so, the outcome
journal) lives on a small tmpfs (tests/support/small_disk.py) that a filler file fills up
while a campaign is sending through the SendGrid stand-in. A full disk is an outage: the
sender holds the provider's answers, claims nothing new, retries with backoff and says "disk
full"; when space comes back the send finishes with every recipient sent exactly once.
(tests/test_hostile_disk_full.py: the CLI and the web app on a full disk.)
"""

from __future__ import annotations

import collections
import logging
import re
import shutil
import signal

import pytest

from mailer.campaigns.models import CampaignStatus as CS
from mailer.delivery import journal
from mailer.delivery.engine import send_campaign
from mailer.delivery.records import DeliveryStatus as DS
from mailer.delivery.writer import UnrecordedOutcomes
from mailer.storage.db import Database, make_engine
from mailer.transports.errors import DiskFull
from mailer.transports.outbox import OutboxTransport
from tests.delivery.conftest import KEY
from tests.delivery.test_outage import _assert_each_sent_once, _env, _rows, _Send, _spawn, _wait
from tests.support.campaigns import add_subscribers, approved_campaign
from tests.support.sendgrid_standin import SendGridStandIn
from tests.support.small_disk import SmallDisk, database_url, disk

pytestmark = [pytest.mark.slow,
              pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]
__all__ = ["database_url", "disk"]  # fixtures, imported so they apply here
FULL_NOTE = r"disk full, retrying in [\d.]+ s; (\d+) batch(es)?' outcomes held"


def _fill_while_sending(send: _Send, disk: SmallDisk) -> None:
    """Fill the disk, then wait for the sender to say so."""
    assert disk.fill() > 0 and disk.available() < 4096
    _wait(lambda: any(re.fullmatch(FULL_NOTE, n) for n in send.notes), 60,
          "the progress line to say the disk is full")


def test_a_disk_filling_up_mid_send_is_waited_out_and_everyone_is_sent_once(
        db, sg_settings, standin, disk, caplog):
    add_subscribers(db, 1500)
    campaign_id = approved_campaign(db)
    standin.latency_ms = 20
    settings = sg_settings.model_copy(update={"db_retry_max": 0.2,
                                              "journal_dir": disk.path / "journal"})
    send = _Send(db, settings, campaign_id)
    send.start()
    _wait(lambda: standin.accepted_count >= 300, 60, "the send to get going")
    _fill_while_sending(send, disk)
    requests_when_full = standin.requests
    send.join(1.5)  # the disk stays full this long (a fault's length, not a measurement)
    assert send.is_alive() and send.error is None, send.error
    # Batches claimed before the disk filled may still go out; nothing new is claimed.
    assert standin.requests - requests_when_full <= settings.concurrency
    assert standin.accepted_count < 1500, "the send finished before the disk filled"
    disk.free()
    send.join(120)
    assert not send.is_alive() and send.error is None, send.error
    assert send.summary.status == CS.SENT
    assert re.search(r"disk full \(database or disk is full\); retrying in [\d.]+ s",
                     caplog.text)
    assert "Traceback" not in caplog.text
    _assert_each_sent_once(standin, db, campaign_id, 1500)
    assert journal.files(settings) == []


def _stopped_while_full(db, settings, standin, disk, campaign_id) -> _Send:
    """Start a send, fill the disk while batches are in flight, then ask it to stop."""
    standin.latency_ms = 600
    send = _Send(db, settings, campaign_id)
    send.start()
    _wait(lambda: standin.requests >= 6, 60, "batches in flight")
    _fill_while_sending(send, disk)
    _wait(lambda: int(re.fullmatch(FULL_NOTE, send.notes[-1]).group(1)) > 0, 60,
          "outcomes to be held")
    send.stop.set()
    send.join(60)
    assert not send.is_alive()
    return send


def test_a_sender_stopped_while_the_disk_is_full_journals_to_a_disk_with_space(
        db, sg_settings, standin, disk, tmp_path):
    """The journal is on another disk: the held answers go there, and once space is back
    the next start records them, so nobody gets a second copy."""
    add_subscribers(db, 200)
    campaign_id = approved_campaign(db)
    settings = sg_settings.model_copy(update={"journal_dir": tmp_path / "journal",
                                              "db_retry_max": 0.2})
    send = _stopped_while_full(db, settings, standin, disk, campaign_id)
    assert "disk is full" in str(send.error)  # it gave up and said why
    files = journal.files(settings)
    assert len(files) == 1
    held_ids = {i for out in journal.read(files[0]) for i in out.claim.ids}
    assert held_ids and {_rows(db, campaign_id)[i] for i in held_ids} == {DS.SENDING}

    disk.free()
    standin.latency_ms = 0
    assert send_campaign(db, settings, campaign_id).status == CS.SENT  # the next start
    _assert_each_sent_once(standin, db, campaign_id, 200)
    assert journal.files(settings) == []


def test_a_sender_that_can_write_neither_database_nor_journal_says_what_it_lost(
        db, sg_settings, standin, disk, caplog):
    """The journal shares the full disk: the process says, in one line, what it could not
    write and where, and logs every held outcome; no half-written journal file is left."""
    add_subscribers(db, 200)
    campaign_id = approved_campaign(db)
    settings = sg_settings.model_copy(update={"journal_dir": disk.path / "journal",
                                              "db_retry_max": 0.2})
    with caplog.at_level(logging.CRITICAL, logger="mailer.delivery"):
        send = _stopped_while_full(db, settings, standin, disk, campaign_id)
    assert isinstance(send.error, UnrecordedOutcomes)
    message = str(send.error)
    assert "\n" not in message
    lost = sum(len(out.claim.ids) for out in send.error.held)
    assert re.match(rf"could not record the provider's answers for {lost} recipients "
                    rf"\(\d+ batch(es)?\) of campaign {campaign_id}: disk full, and the "
                    r"journal could not be written \(No space left on device: ", message)
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert critical and "could not journal" in critical[0].getMessage()
    for out in send.error.held:
        assert out.claim.batch_id in critical[0].getMessage()
    journal_dir = disk.path / "journal"
    assert not journal_dir.exists() or list(journal_dir.iterdir()) == []


class _CountingOutbox(OutboxTransport):
    """The outbox transport, counting each delivery's files actually written."""

    def __init__(self, directory):
        super().__init__(directory)
        self.written: collections.Counter = collections.Counter()
        self.disk_full = 0

    def send(self, batch):
        try:
            results = super().send(batch)
        except DiskFull as exc:
            self.disk_full += 1
            self._count(exc.done)
            raise
        self._count(results)
        return results

    def _count(self, results) -> None:
        self.written.update(r.recipient.delivery_id for r in results if r.accepted)


@pytest.mark.parametrize("database_too", [True, False], ids=["beside-the-db", "alone"])
def test_an_outbox_on_the_full_disk_is_waited_out_too_and_writes_everyone_once(
        db, settings, disk, caplog, sqlite_template, tmp_path, database_too):
    """The outbox on the full disk, beside the database (the default layout) or alone (the
    database elsewhere, with room). The rows it could not write go back to pending (no half
    file is left), claims are held off with backoff, and once space is back every delivery
    has exactly one file and its row is accepted. Beside the database, whichever write meets
    the full disk first (a file, or the claim's commit) holds the send: either may."""
    if not database_too:
        shutil.copy(sqlite_template, tmp_path / "roomy.db")
        db = Database(make_engine(f"sqlite:///{tmp_path / 'roomy.db'}"))
    add_subscribers(db, 1500)
    campaign_id = approved_campaign(db)
    own = settings.model_copy(update={
        "transport": "outbox", "outbox_dir": disk.path / "outbox", "batch_size": 10,
        "concurrency": 3, "rate_limit": 400, "db_retry_max": 0.2,
        "journal_dir": disk.path / "journal", "send_processes": 1})
    transport = _CountingOutbox(own.outbox_dir)
    send = _Send(db, own, campaign_id, transport=transport)
    send.start()
    _wait(lambda: sum(transport.written.values()) >= 300, 60, "the send to get going")
    assert disk.fill() > 0
    _wait(lambda: any(n.startswith("disk full, retrying in") for n in send.notes), 60,
          "the progress line to say the disk is full")
    send.join(1.5)  # the disk stays full this long (a fault's length, not a measurement)
    assert send.is_alive() and send.error is None, send.error
    assert sum(transport.written.values()) < 1500, "the send finished before the disk filled"
    disk.free()
    send.join(120)
    assert not send.is_alive() and send.error is None, send.error
    assert send.summary.status == CS.SENT
    assert "Traceback" not in caplog.text
    rows = _rows(db, campaign_id)
    assert set(rows.values()) == {DS.ACCEPTED}
    assert set(transport.written) == set(rows) and set(transport.written.values()) == {1}
    files = {p.name for p in own.outbox_dir.iterdir()}
    assert files == {f"c{campaign_id}-d{i}.eml" for i in rows}  # and no half-written one
    if not database_too:  # only the outbox was short of space: its own backoff held claims
        assert transport.disk_full > 0
        assert re.search(r"disk full writing the outbox \(No space left on device: .*\); "
                         r"retrying in [\d.]+ s", caplog.text)
        assert "database or disk is full" not in caplog.text
        db.dispose()


def test_campaigns_send_stopped_while_the_disk_is_full_says_so_and_the_next_run_finishes(
        db, settings, disk, tmp_path):
    """The real command, told to stop (SIGTERM) while the disk is full: it journals the
    held answers (the journal's disk has room), exits 1 with one line saying the disk is
    full, and prints no traceback; once space is back the next run sends the rest."""
    add_subscribers(db, 200)
    campaign_id = approved_campaign(db)
    with SendGridStandIn(api_key=KEY, latency_ms=600, max_seconds=120) as standin:
        env = _env(settings, standin, settings.database_url) | {"MAILER_CONCURRENCY": "3",
                                                                 "MAILER_BATCH_SIZE": "10"}
        log = tmp_path / "send.log"
        sender = _spawn(["campaigns", "send", str(campaign_id), "--json"], env, log)
        _wait(lambda: standin.requests >= 6, 60, "batches in flight")
        disk.fill()
        _wait(lambda: b"disk full (database or disk is full); retrying in" in log.read_bytes(),
              60, "the sender to say the disk is full")
        sender.send_signal(signal.SIGTERM)
        assert sender.wait(60) == 1
        text = log.read_text()
        assert "Traceback" not in text
        assert re.search(r"disk full: \d+ batches' outcomes written to .*; the next start "
                         r"records them", text), text[-2000:]
        assert text.strip().splitlines()[-1] == (
            "mailer: error: disk full (database or disk is full); the write in progress was "
            "rolled back: free space and run the command again")
        disk.free()
        again = _spawn(["campaigns", "send", str(campaign_id), "--json"], env,
                       tmp_path / "again.log")
        assert again.wait(120) == 0, (tmp_path / "again.log").read_text()[-2000:]
        _assert_each_sent_once(standin, db, campaign_id, 200)


def test_an_outbox_disk_full_for_longer_than_the_outage_limit_pauses_the_campaign(
        settings, disk, sqlite_template, tmp_path, caplog):
    """Nobody frees space: past MAILER_DB_OUTAGE_SECONDS the send stops with the campaign
    paused and saying why; nothing is in doubt, nothing was written twice."""
    shutil.copy(sqlite_template, tmp_path / "roomy.db")
    db = Database(make_engine(f"sqlite:///{tmp_path / 'roomy.db'}"))
    add_subscribers(db, 50)
    campaign_id = approved_campaign(db)
    own = settings.model_copy(update={
        "transport": "outbox", "outbox_dir": disk.path / "outbox", "batch_size": 10,
        "concurrency": 2, "db_retry_max": 0.2, "db_outage_seconds": 1.0,
        "send_processes": 1})
    disk.fill()
    summary = send_campaign(db, own, campaign_id, transport=OutboxTransport(own.outbox_dir))
    assert summary.status == CS.PAUSED
    assert re.fullmatch(r"disk full writing the outbox \(No space left on device: .*\) for 1 s; "
                        r"free space, then resume the campaign", summary.reason), summary.reason
    assert set(_rows(db, campaign_id).values()) == {DS.PENDING}
    assert "Traceback" not in caplog.text
    db.dispose()
