"""Leader election primitives: one holder at a time, takeover only after expiry/release."""

from __future__ import annotations

import time

import pytest

from mailer.scheduling.leader import AdvisoryLockLeader, LeaseLeader, make_leader


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_lease_is_exclusive_until_it_expires(db):
    first, second = LeaseLeader(db, 0.5), LeaseLeader(db, 0.5)
    assert first.try_acquire() and first.is_leader()
    assert not second.try_acquire()
    assert first.renew() and not second.try_acquire()
    time.sleep(0.6)  # first stalls past its lease
    assert not first.is_leader()
    assert second.try_acquire() and second.is_leader()
    assert not first.renew()  # it must step down
    assert first.current_holder() == second.holder


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_released_lease_is_free_at_once(db):
    first, second = LeaseLeader(db, 60), LeaseLeader(db, 60)
    assert first.try_acquire()
    first.release()
    assert second.try_acquire()
    first.release()  # releasing what one no longer holds changes nothing
    assert second.is_leader()


@pytest.mark.postgresql
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_advisory_lock_is_exclusive_and_dies_with_its_connection(db, settings):
    first, second = make_leader(db, settings), make_leader(db, settings)
    assert isinstance(first, AdvisoryLockLeader)
    try:
        assert first.try_acquire() and first.is_leader()
        assert not second.try_acquire()
        first._connection.invalidate()  # the connection dies (process killed, network gone)
        assert not first.renew()
        # The server frees the lock once its backend sees the connection gone: a moment later.
        deadline = time.monotonic() + 10
        while not second.try_acquire() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.is_leader()
    finally:
        first.release()
        second.release()


def test_current_leader_names_the_running_scheduler(db, settings):
    from mailer.scheduling.leader import current_leader

    assert current_leader(db) is None
    leader = make_leader(db, settings)
    try:
        assert leader.try_acquire()
        holder = current_leader(db)
        assert holder is not None
        if db.dialect == "sqlite":
            assert holder == leader.holder
    finally:
        leader.release()
    assert current_leader(db) is None


def test_schedule_list_warns_when_no_scheduler_runs(cli, db, settings):
    cli("digests", "create", "--frequency", "daily", "--at", "07:00")
    result = cli("schedule", "list", "--json")
    assert result.exit_code == 0 and len(result.json()) == 1
    assert "no scheduler is running" in result.stderr
    leader = make_leader(db, settings)
    try:
        assert leader.try_acquire()
        result = cli("schedule", "list", "--json")
        assert "scheduler running" in result.stderr and "warning" not in result.stderr
    finally:
        leader.release()
