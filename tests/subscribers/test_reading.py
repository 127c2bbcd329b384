"""The reading half of an import: what it prepares without the database."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import pytest

from subscribers.addresses import email_hash, email_key
from subscribers.models import ACTIVE, PENDING
from subscribers.reading import NewSubscribers, read_chunks
from tests.support.generators import drain


class Topics:
    """A TopicMatcher stand-in: two known topics."""

    def match(self, word: str) -> int | None:
        return {"veterans": 1, "agriculture": 2}.get(word.lower())




@pytest.fixture
def listing(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text(
        "email,name,topics,status\n"
        "zed@example.org,Zed,veterans;typo,\n"
        "amy@example.org,Amy,agriculture,pending\n"
        "gone@example.org,Gone,,unsubscribed\n"
        "mia@example.org,Mia,Veterans,\n"
        "bob@example.org,Bob,typo,\n", encoding="utf-8")
    return path


def test_chunks_come_in_address_order_with_topic_ids_and_insert_values(listing):
    new = NewSubscribers("sqlite", Topics(), [2], double_opt_in=False, source="list.csv")
    chunks, report = drain(read_chunks(listing, 3, new))
    emails = [[item[0] for item in items] for items, _ in chunks]
    assert emails == [["amy@example.org", "gone@example.org", "zed@example.org"],
                      ["bob@example.org", "mia@example.org"]]
    items = {item[0]: item for items, _ in chunks for item in items}
    email, digest, key, line, intent, frequency, topic_ids, values = items["zed@example.org"]
    assert digest == email_hash(email) and key == email_key(digest) and line == 2
    assert intent == ACTIVE and frequency is None
    assert topic_ids == (1, 2)  # its own plus --topics
    row = dict(zip(NewSubscribers.COLUMNS, values, strict=True))
    assert row["email_key"] == email_key(digest) and row["status"] == ACTIVE
    assert row["consent_source"] == "list.csv line 2"
    assert isinstance(row["created_at"], str)  # converted for sqlite3 already
    assert dict(zip(NewSubscribers.COLUMNS, items["amy@example.org"][-1],
                    strict=True))["status"] == PENDING
    assert items["gone@example.org"][-1] is None  # a suppression inserts nobody
    assert report.unknown_topics == {"typo": 2} and report.rows == 5


def test_double_opt_in_makes_everyone_new_pending(listing):
    new = NewSubscribers("sqlite", Topics(), [], double_opt_in=True, source="list.csv")
    chunks, _ = drain(read_chunks(listing, 10, new))
    statuses = {item[0]: dict(zip(NewSubscribers.COLUMNS, item[-1], strict=True))["status"]
                for items, _ in chunks for item in items if item[-1] is not None}
    assert set(statuses.values()) == {PENDING}


def test_new_subscribers_pickle_after_use_for_a_spawned_reader():
    new = NewSubscribers("sqlite", Topics(), [1], double_opt_in=False, source="x")
    moment = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    before = new._converter()(moment)
    copy = pickle.loads(pickle.dumps(new))
    assert copy._converter()(moment) == before == "2026-12-01 12:00:00.000000"
