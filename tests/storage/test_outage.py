"""``mailer.storage.outage``: which real driver errors count as an outage, and riding one out.
Every error here is raised by a real driver against a real database (PostgreSQL through the
cutting proxy, SQLite with a second connection holding its lock)."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from mailer.storage import outage
from mailer.storage.db import make_engine
from tests.support.dbproxy import DbProxy


def _raised(engine, sql: str) -> DBAPIError:
    with pytest.raises(DBAPIError) as info, engine.begin() as connection:
        connection.execute(text(sql))
    return info.value


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_cut_or_refused_postgresql_connection_is_an_outage_and_a_bad_query_is_not(
        database_url):
    with DbProxy() as proxy:
        engine = make_engine(proxy.url(database_url))
        try:
            connection = engine.connect()
            connection.execute(text("SELECT 1"))
            proxy.cut()
            with pytest.raises(DBAPIError) as dropped:
                connection.execute(text("SELECT 1"))
            connection.close()
            refused = _raised(engine, "SELECT 1")
            proxy.restore()
            bad = _raised(engine, "SELECT * FROM no_such_table")
            division = _raised(engine, "SELECT 1/0")
        finally:
            engine.dispose()
    assert outage.is_outage(dropped.value) and dropped.value.connection_invalidated
    assert outage.is_outage(refused)
    assert not outage.is_outage(bad) and not outage.is_outage(division)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_locked_sqlite_database_is_an_outage_and_a_constraint_is_not(database_url):
    path = database_url.removeprefix("sqlite:///")
    impatient = create_engine(database_url, connect_args={"timeout": 0})
    holder = sqlite3.connect(path)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        locked = _raised(impatient, "CREATE TABLE t (x INTEGER)")
        holder.rollback()
        with impatient.begin() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
            connection.execute(text("INSERT INTO t VALUES (1)"))
        constraint = _raised(impatient, "INSERT INTO t VALUES (1)")
        missing = _raised(impatient, "SELECT * FROM no_such_table")
    finally:
        holder.close()
        impatient.dispose()
    assert isinstance(locked, OperationalError) and outage.is_outage(locked)
    assert isinstance(constraint, IntegrityError) and not outage.is_outage(constraint)
    assert isinstance(missing, OperationalError) and not outage.is_outage(missing)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_ride_out_retries_until_the_database_is_back(database_url, settings):
    patient = settings.model_copy(update={"db_retry_max": 0.1})
    with DbProxy() as proxy:
        engine = make_engine(proxy.url(database_url))
        tries = []

        def ping():
            tries.append(1)
            if len(tries) == 3:
                proxy.restore()  # back on the third try
            outage.ping(engine)
            return "up"
        proxy.cut()
        try:
            assert outage.ride_out(ping, patient) == "up"
        finally:
            engine.dispose()
    assert len(tries) == 3


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_ride_out_gives_up_soon_after_a_stop_and_reraises(database_url, settings):
    patient = settings.model_copy(update={"db_retry_max": 0.1})
    stop = threading.Event()
    stop.set()
    with DbProxy() as proxy:
        engine = make_engine(proxy.url(database_url))
        proxy.cut()
        spell = outage.Spell(patient, stop)
        try:
            with pytest.raises(OperationalError):
                outage.ride_out(lambda: outage.ping(engine), patient, spell=spell)
        finally:
            engine.dispose()
    assert spell.exhausted and spell.attempts >= 2


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_full_disk_is_an_outage_named_disk_full(database_url, tmp_path):
    """SQLITE_FULL, raised for real by a page limit (the same error a full disk gives; the
    real full disk is tests/delivery/test_disk_full.py), and ENOSPC from /dev/full."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE filler (x BLOB)"))
            pages = connection.execute(text("PRAGMA page_count")).scalar()
        with pytest.raises(OperationalError) as full, engine.begin() as connection:
            connection.execute(text(f"PRAGMA max_page_count = {pages + 1}"))
            connection.execute(text("INSERT INTO filler VALUES (zeroblob(1000000))"))
        missing = _raised(engine, "SELECT * FROM no_such_table")
    finally:
        engine.dispose()
    with pytest.raises(OSError) as no_space, open("/dev/full", "wb", buffering=0) as device:
        device.write(b"x")
    with pytest.raises(OSError) as not_found:
        open(tmp_path / "nowhere" / "file")
    assert outage.is_disk_full(full.value) and outage.is_outage(full.value)
    assert outage.trouble(full.value) == "disk full"
    assert outage.is_disk_full(no_space.value) and outage.is_outage(no_space.value)
    assert not outage.is_disk_full(missing) and not outage.is_outage(missing)
    assert not outage.is_disk_full(not_found.value) and not outage.is_outage(not_found.value)
    assert outage.trouble(missing) == "database unreachable"


def test_backoff_counts_over_the_whole_spell(settings):
    """A second retry policy for the same spell (the sender's next failed claim on a disk
    still full) carries on doubling instead of starting again at 0.25 s."""
    spell = outage.Spell(settings.model_copy(update={"db_retry_max": 1.5}))
    waits: list[float] = []
    for _ in range(2):
        outage.retrying(spell, sleep=waits.append)(_failing(2))
    assert waits == [0.25, 0.5, 1.0, 1.5]
    assert spell.trouble == "disk full"


def _failing(times: int):
    """A function that fails with ENOSPC ``times`` times, then works."""
    calls = []

    def call() -> None:
        calls.append(1)
        if len(calls) <= times:
            raise OSError(28, "No space left on device")
    return call
