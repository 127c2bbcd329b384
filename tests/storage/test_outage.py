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
