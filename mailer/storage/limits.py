"""Rate limits every process of an installation shares: hits counted in the database.

Several web processes (``mailer serve --workers N``, or several machines behind a load
balancer) must count one visitor's hits together, or the effective limit multiplies by the
number of processes. Each limit (a *bucket*: "subscribe", "login", …) counts hits per key in
fixed windows of ``window`` seconds, one row per key and window, and judges a new hit by the
sliding-window estimate: this window's hits plus the previous window's, weighted by how much
of the previous window still lies inside the last ``window`` seconds. That is within a few
per cent of a true sliding log while storing two numbers per key.

A hit is one bound ``INSERT … ON CONFLICT DO UPDATE … WHERE hits < cap RETURNING hits``
(the same SQL on PostgreSQL and SQLite): the row's own lock makes the check and the count one atomic
step, so two processes can never both take the last free hit. A refused hit is not counted,
as before (someone retrying too fast is let in again once the window has moved on).

Keys are stored as SHA-256 hashes: the table never holds an address or an IP in clear. Each
row carries the moment after which it no longer matters; rows past it are deleted by one
indexed ``DELETE`` at most once a minute per limit and process.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import BigInteger, Integer, String, delete, text
from sqlalchemy.orm import Mapped, mapped_column

from mailer.storage.base import Base
from mailer.storage.db import Database

#: Seconds between two sweeps of stale rows by one limit in one process.
PRUNE_EVERY = 60

_NO_SYNC = text("SET LOCAL synchronous_commit TO OFF")
#: This window's and the previous one's hits for one key.
_COUNTS = text(
    "SELECT window_start, hits FROM rate_hits WHERE bucket = :bucket AND key_hash = :key"
    " AND window_start IN (:previous, :start)")
#: The atomic step: add one hit unless the window already holds ``cap`` (the same SQL on
#: PostgreSQL and SQLite); a row comes back only when the hit was counted.
_COUNT_ONE = text(
    "INSERT INTO rate_hits (bucket, key_hash, window_start, hits, expires_at)"
    " VALUES (:bucket, :key, :start, 1, :expires)"
    " ON CONFLICT (bucket, key_hash, window_start)"
    " DO UPDATE SET hits = rate_hits.hits + 1 WHERE rate_hits.hits < :cap"
    " RETURNING hits")


class RateHit(Base):
    """Hits for one key of one bucket in the window starting at ``window_start``."""

    __tablename__ = "rate_hits"

    bucket: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Unix seconds, a multiple of the bucket's window.
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hits: Mapped[int] = mapped_column(Integer)
    #: Unix seconds after which the row no longer counts (the end of the next window).
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)


@dataclass(frozen=True)
class Decision:
    """Whether a hit was let through, and if not, how many seconds until one would be."""

    allowed: bool
    retry_after: int = 0


class SharedLimit:
    """At most about ``limit`` hits per key in any ``window`` seconds, counted in ``db``.

    Every object made with the same ``bucket`` on the same database counts together, in this
    process or any other. ``clock`` gives Unix seconds (wall time: every process must agree).
    """

    def __init__(self, db: Database, bucket: str, *, limit: int, window: int,
                 clock: Callable[[], float] = time.time):
        if limit < 1 or window < 1 or int(window) != window:
            raise ValueError("a rate limit needs limit >= 1 and a whole window >= 1 second")
        self.db, self.bucket = db, bucket
        self.limit, self.window = limit, int(window)
        self.clock = clock
        self._last_prune = -math.inf
        self._prune_lock = threading.Lock()

    def hit(self, key: str, within=None) -> Decision:
        """Count one hit for ``key`` when it fits under the limit; refused hits are not
        counted. Raises SQLAlchemy's OperationalError when the database is unreachable.

        ``within``: a session (or connection) whose transaction the hit joins, so that it
        counts only if that transaction commits (the signup form counts its hits in the
        signup's own transaction: one commit instead of three). Without it the hit is its
        own transaction, which PostgreSQL commits without waiting for the disk."""
        now = self.clock()
        start = int(now // self.window) * self.window
        params = {"bucket": self.bucket, "key": hashlib.sha256(key.encode("utf-8")).hexdigest(),
                  "previous": start - self.window, "start": start}
        if within is not None:
            allowed, previous, current, cap = self._count(within, now, start, params)
        else:
            with self.db.engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    # A hit lost in a database crash costs nothing: do not wait for the disk.
                    connection.execute(_NO_SYNC)
                allowed, previous, current, cap = self._count(connection, now, start, params)
        self._maybe_prune(now, within)
        if allowed:
            return Decision(True)
        return Decision(False, retry_after(now, start, self.window, self.limit, previous,
                                           max(current, cap)))

    def _count(self, connection, now: float, start: int, params: dict):
        """(allowed, previous window's hits, this window's, cap) for one hit."""
        # Core and two fixed statements rather than the ORM: this runs on every signup and
        # login, and building ORM statements cost ten times the database's own work.
        counts = dict(connection.execute(_COUNTS, params).all())
        previous, current = counts.get(start - self.window, 0), counts.get(start, 0)
        carried = previous * (1 - (now - start) / self.window)
        cap = math.floor(self.limit - carried + 1e-9)
        allowed = cap >= 1 and connection.execute(_COUNT_ONE, {
            **params, "expires": start + 2 * self.window, "cap": cap}).first() is not None
        return allowed, previous, current, cap

    def _maybe_prune(self, now: float, within=None) -> None:
        with self._prune_lock:
            if now - self._last_prune < PRUNE_EVERY:
                return
            self._last_prune = now
        if within is not None:
            # In the caller's transaction: another connection would wait for the write lock
            # that transaction holds on SQLite (until the caller's own commit: never).
            _prune(within, now)
        else:
            prune(self.db, now)


def prune(db: Database, now: float) -> int:
    """Delete every bucket's rows that no longer count; returns how many went."""
    with db.session() as session:
        return _prune(session, now)


def _prune(connection, now: float) -> int:
    result = connection.execute(delete(RateHit.__table__).where(
        RateHit.__table__.c.expires_at < int(now)))
    return result.rowcount or 0


def retry_after(now: float, start: int, window: int, limit: int, previous: int,
                current: int) -> int:
    """Whole seconds until one more hit would fit, if no one else hits meanwhile (at least 1).

    Within this window the previous window's share fades; past it, this window's hits become
    the previous ones and fade in their turn.
    """
    end = start + window
    if previous > 0 and current + 1 <= limit:
        fits_at = start + window * (1 - (limit - current - 1) / previous)
        if fits_at < end:
            return max(1, math.ceil(fits_at - now))
    fraction = max(0.0, 1 - (limit - 1) / current) if current else 0.0
    return max(1, math.ceil(end + window * fraction - now))
