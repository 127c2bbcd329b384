"""A claim that keeps failing while every other write goes through (a full disk: an empty
commit needs no new page, a claim does) is retried with backoff and said on the progress
line, never spun on. Before, the sender's "first try after the outage" committed nothing,
counted as a success, and the next claim failed again at once: a CPU-bound loop that said
nothing for as long as the disk stayed full (seen as a 60 s silence in the disk-full test).
"""

from __future__ import annotations

import re
import sqlite3
import threading

import pytest
from sqlalchemy import event

from mailer.campaigns.models import CampaignStatus as CS
from tests.delivery.test_outage import _assert_each_sent_once, _Send, _wait
from tests.support.campaigns import add_subscribers, approved_campaign

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
FULL_NOTE = r"disk full, retrying in [\d.]+ s; \d+ batch(es)?' outcomes held"


class _FullDiskForClaims:
    """Makes the claim statement fail as SQLite does on a full disk while ``full`` is set;
    counts the claims tried."""

    def __init__(self, engine):
        self.full = threading.Event()
        self.tried = 0
        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, _conn, _cursor, statement, _params, _context, _many):
        if statement.startswith("UPDATE deliveries") and "LIMIT" in statement:
            self.tried += 1
            if self.full.is_set():
                raise sqlite3.OperationalError("database or disk is full")


def test_a_claim_failing_on_a_full_disk_backs_off_and_says_so(db, sg_settings, standin,
                                                              caplog):
    add_subscribers(db, 100)
    campaign_id = approved_campaign(db)
    disk = _FullDiskForClaims(db.engine)
    disk.full.set()  # nothing in flight, nothing held: only the claims fail
    settings = sg_settings.model_copy(update={"db_retry_max": 0.2})
    send = _Send(db, settings, campaign_id)
    send.start()
    _wait(lambda: any(re.fullmatch(FULL_NOTE, n) for n in send.notes), 10,
          "the progress line to say the disk is full")
    tried = disk.tried
    send.join(1.0)  # the disk stays full this long (a fault's length)
    assert send.is_alive() and send.error is None, send.error
    # Backoff of 0.25 s, capped at 0.2 s here: a handful of tries a second, not thousands.
    assert disk.tried - tried <= 8, disk.tried - tried
    assert standin.requests == 0
    assert re.search(r"disk full \(database or disk is full\); retrying in [\d.]+ s",
                     caplog.text)
    disk.full.clear()
    send.join(60)
    assert not send.is_alive() and send.error is None, send.error
    assert send.summary.status == CS.SENT
    _assert_each_sent_once(standin, db, campaign_id, 100)
