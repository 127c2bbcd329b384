"""Rate limits counted in the database (``mailer.storage.limits``), on both databases: the
sliding-window estimate, per key and bucket, refused hits not counted, Retry-After, two
separate connections (two processes) counting together, the atomic last hit, pruning."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from mailer.storage.db import open_database
from mailer.storage.limits import RateHit, SharedLimit, prune, retry_after


class Clock:
    def __init__(self, now: float = 300 * 3600.0):  # a multiple of every window used below
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_counts_per_key_and_bucket_and_refuses_past_the_limit(db):
    clock = Clock()
    signups = SharedLimit(db, "subscribe", limit=3, window=60, clock=clock)
    logins = SharedLimit(db, "login", limit=3, window=60, clock=clock)
    assert [signups.hit("10.0.0.1").allowed for _ in range(4)] == [True, True, True, False]
    assert signups.hit("10.0.0.2").allowed  # another key
    assert logins.hit("10.0.0.1").allowed  # another bucket


def test_a_refused_hit_is_not_counted_and_the_window_slides(db):
    clock = Clock()
    limit = SharedLimit(db, "subscribe", limit=3, window=60, clock=clock)
    for _ in range(3):
        limit.hit("a")
    for _ in range(5):
        assert not limit.hit("a").allowed
    with db.session() as session:
        assert session.scalar(select(func.sum(RateHit.hits))) == 3
    # Half-way through the next window half of the three still count: one more fits.
    clock.now += 90
    assert limit.hit("a").allowed
    assert not limit.hit("a").allowed
    # Two windows on, nothing from before counts.
    clock.now += 120
    assert [limit.hit("a").allowed for _ in range(4)] == [True, True, True, False]


def test_refusal_says_when_to_retry_and_that_moment_is_right(db):
    clock = Clock()
    limit = SharedLimit(db, "subscribe", limit=2, window=60, clock=clock)
    clock.now += 10
    limit.hit("a")
    limit.hit("a")
    refused = limit.hit("a")
    # Both hits are in this window: they fade in the next one until one fits (half of it).
    assert not refused.allowed and refused.retry_after == 50 + 30
    clock.now += refused.retry_after - 1
    assert not limit.hit("a").allowed
    clock.now += 1
    assert limit.hit("a").allowed


def test_retry_after_while_the_previous_window_fades():
    # Window [60, 120): 4 hits carried from before, 1 now, limit 4: the next hit fits once
    # 4 * (1 - f) + 1 + 1 <= 4, i.e. f >= 0.5 (second 90).
    assert retry_after(70, 60, 60, 4, previous=4, current=1) == 20
    # Nothing carried: wait for this window's hits to fade in the next one.
    assert retry_after(70, 60, 60, 1, previous=0, current=1) == 50 + 60
    assert retry_after(119.5, 60, 60, 5, previous=0, current=5) >= 1


def test_two_connections_to_one_database_count_together(db, settings):
    """Two Database objects are two web processes: their hits add up."""
    other = open_database(settings)
    try:
        clock = Clock()
        first = SharedLimit(db, "subscribe", limit=4, window=600, clock=clock)
        second = SharedLimit(other, "subscribe", limit=4, window=600, clock=clock)
        answers = [limiter.hit("10.0.0.9").allowed for limiter in (first, second) * 3]
        assert answers == [True, True, True, True, False, False]
    finally:
        other.dispose()


def test_the_last_free_hit_goes_to_exactly_one_of_many_at_once(db, settings):
    others = [open_database(settings) for _ in range(3)]
    try:
        limiters = [SharedLimit(d, "login", limit=5, window=600) for d in [db, *others]]
        results: list[bool] = []
        start = threading.Barrier(16)

        def hit(limiter: SharedLimit) -> None:
            start.wait()
            results.append(limiter.hit("10.0.0.7").allowed)

        threads = [threading.Thread(target=hit, args=(limiters[i % 4],)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == [False] * 11 + [True] * 5
    finally:
        for other in others:
            other.dispose()


def test_keys_are_stored_hashed_and_stale_rows_are_pruned(db):
    clock = Clock()
    short = SharedLimit(db, "short", limit=5, window=60, clock=clock)
    long = SharedLimit(db, "long", limit=5, window=3600, clock=clock)
    short.hit("victim@example.org")
    long.hit("victim@example.org")
    with db.session() as session:
        stored = session.execute(select(RateHit.key_hash, RateHit.bucket)).all()
    assert len(stored) == 2 and all("victim" not in key for key, _ in stored)
    # Two short windows on, the short row no longer counts; the long one does.
    assert prune(db, clock.now + 121) == 1
    with db.session() as session:
        assert session.scalars(select(RateHit.bucket)).all() == ["long"]


def test_a_limiter_prunes_as_it_goes(db):
    clock = Clock()
    limit = SharedLimit(db, "subscribe", limit=5, window=60, clock=clock)
    for i in range(20):
        limit.hit(f"10.0.0.{i}")
    clock.now += 600
    limit.hit("10.0.1.1")
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(RateHit)) == 1


def test_nonsense_limits_are_refused(db):
    with pytest.raises(ValueError):
        SharedLimit(db, "x", limit=0, window=60)
    with pytest.raises(ValueError):
        SharedLimit(db, "x", limit=1, window=0.5)


def test_a_hit_within_a_transaction_counts_only_if_it_commits(db):
    clock = Clock()
    limit = SharedLimit(db, "subscribe", limit=2, window=60, clock=clock)
    with pytest.raises(RuntimeError):
        with db.session() as session:
            assert limit.hit("a", within=session.connection()).allowed
            raise RuntimeError("the signup failed")
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(RateHit)) == 0
        assert limit.hit("a", within=session.connection()).allowed
        assert limit.hit("a", within=session.connection()).allowed
        assert not limit.hit("a", within=session.connection()).allowed
    assert not limit.hit("a").allowed  # the committed two fill the window for everyone


def test_a_hit_within_a_transaction_prunes_in_it_without_waiting_for_itself(db):
    """The sweep runs in the caller's transaction: on SQLite another connection would wait
    for the write lock that transaction already holds."""
    clock = Clock()
    limit = SharedLimit(db, "subscribe", limit=5, window=60, clock=clock)
    limit.hit("old")
    clock.now += 600
    with db.session() as session:
        limit.hit("new", within=session.connection())  # a sweep is due: "old" has expired
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(RateHit)) == 1
