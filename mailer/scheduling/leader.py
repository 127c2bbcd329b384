"""One scheduler at a time.

APScheduler's job store must never be shared by two running schedulers (each would run every
job), so a ``mailer scheduler`` first becomes leader and only then starts APScheduler; a second
one waits as a hot standby and takes over when the leader dies.

- PostgreSQL: a session-level advisory lock held on a dedicated connection. The server releases
  it the moment that connection ends (process killed, machine gone: TCP keepalives notice).
- SQLite (and anything else): a lease row in ``leader_leases`` that the leader renews every
  third of ``MAILER_LEADER_LEASE_SECONDS``; a standby takes it over once it has expired. A
  leader that fails to renew (it stalled past its lease and someone else took over) steps down.

Every leader has the same interface: ``try_acquire()``, ``renew()`` (False: leadership lost),
``is_leader()`` (checks the database, for fencing just before a send starts) and ``release()``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from sqlalchemy import create_engine, delete, or_, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from mailer.scheduling.models import LeaderLease
from mailer.settings import Settings
from mailer.storage.base import utcnow
from mailer.storage.db import Database

log = logging.getLogger(__name__)

LEASE_NAME = "scheduler"
#: Any fixed 64-bit number, distinct from the schema-upgrade lock in mailer.storage.db.
SCHEDULER_LOCK_KEY = 7_263_110_002


def holder_name() -> str:
    """Who holds the lease: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseLeader:
    """Leadership by a renewable lease row (SQLite, or any database)."""

    def __init__(self, db: Database, lease_seconds: float, name: str = LEASE_NAME):
        self.db = db
        self.lease = timedelta(seconds=lease_seconds)
        self.name = name
        self.holder = holder_name()

    def try_acquire(self) -> bool:
        """Take the lease if it is free, expired or already ours. Returns True when ours."""
        now = utcnow()
        try:
            with self.db.session() as session:
                result = session.execute(
                    update(LeaderLease)
                    .where(LeaderLease.name == self.name,
                           or_(LeaderLease.holder == self.holder, LeaderLease.expires_at < now))
                    .values(holder=self.holder, expires_at=now + self.lease)
                )
                if result.rowcount == 1:
                    return True
                if session.get(LeaderLease, self.name) is not None:
                    return False
                session.add(LeaderLease(name=self.name, holder=self.holder,
                                        expires_at=now + self.lease))
            return True
        except IntegrityError:  # another process created the row first
            return False

    renew = try_acquire

    def is_leader(self) -> bool:
        with self.db.session() as session:
            row = session.get(LeaderLease, self.name)
            return row is not None and row.holder == self.holder and row.expires_at > utcnow()

    def release(self) -> None:
        """Give the lease up at once so a standby need not wait for it to expire."""
        try:
            with self.db.session() as session:
                session.execute(delete(LeaderLease).where(LeaderLease.name == self.name,
                                                          LeaderLease.holder == self.holder))
        except SQLAlchemyError as exc:  # the lease simply expires
            log.warning("could not release the scheduler lease: %s", exc)

    def current_holder(self) -> str | None:
        with self.db.session() as session:
            row = session.scalar(select(LeaderLease).where(LeaderLease.name == self.name))
            return row.holder if row is not None and row.expires_at > utcnow() else None


class AdvisoryLockLeader:
    """Leadership by ``pg_try_advisory_lock`` on a dedicated connection (PostgreSQL)."""

    def __init__(self, db: Database, key: int = SCHEDULER_LOCK_KEY):
        url = db.engine.url
        # Its own engine without pooling: the lock lives exactly as long as this connection,
        # and keepalives make the server notice a vanished leader within about 30 s.
        self.engine = create_engine(
            url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
            connect_args={"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
                          "keepalives_count": 3},
        )
        self.key = key
        self.holder = holder_name()
        self._connection: Connection | None = None
        self._held = False
        # One connection, used by the renewing loop and by job threads fencing their starts.
        self._lock = threading.RLock()

    def try_acquire(self) -> bool:
        with self._lock:
            return self._try_acquire()

    def _try_acquire(self) -> bool:
        if self._held:
            return self._renew()
        try:
            if self._connection is None:
                self._connection = self.engine.connect()
            self._held = bool(self._connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar())
        except SQLAlchemyError as exc:
            log.warning("scheduler lock: %s", str(exc).splitlines()[0])
            self._drop_connection()
        return self._held

    def renew(self) -> bool:
        """True while the lock's connection is alive (the lock dies with it)."""
        with self._lock:
            return self._renew()

    def _renew(self) -> bool:
        if not self._held or self._connection is None:
            return False
        try:
            self._connection.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            log.warning("scheduler lock connection lost; stepping down")
            self._drop_connection()
            return False

    def is_leader(self) -> bool:
        return self.renew()

    def release(self) -> None:
        with self._lock:
            if self._held and self._connection is not None:
                try:
                    self._connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                             {"key": self.key})
                except SQLAlchemyError:
                    pass
            self._drop_connection()
            self.engine.dispose()

    def _drop_connection(self) -> None:
        self._held = False
        if self._connection is not None:
            try:
                self._connection.close()
            except SQLAlchemyError:
                pass
            self._connection = None


def current_leader(db: Database) -> str | None:
    """Who leads right now: the lease holder (SQLite), ``"pid N"`` of the backend holding the
    advisory lock (PostgreSQL), or None when no scheduler is running."""
    if db.dialect == "postgresql":
        with db.engine.connect() as connection:
            pid = connection.execute(text(
                "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                " WHERE d.datname = current_database() AND l.locktype = 'advisory'"
                " AND l.granted AND l.classid = :high AND l.objid = :low AND l.objsubid = 1"),
                {"high": SCHEDULER_LOCK_KEY >> 32, "low": SCHEDULER_LOCK_KEY & 0xFFFFFFFF},
            ).scalar()
        return f"database backend pid {pid}" if pid is not None else None
    return LeaseLeader(db, 1).current_holder()


def make_leader(db: Database, settings: Settings) -> LeaseLeader | AdvisoryLockLeader:
    if db.dialect == "postgresql":
        return AdvisoryLockLeader(db)
    return LeaseLeader(db, settings.leader_lease_seconds)
