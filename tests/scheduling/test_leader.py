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
        assert second.try_acquire()
    finally:
        first.release()
        second.release()
