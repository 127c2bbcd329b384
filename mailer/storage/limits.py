"""Rate limits every process of an installation shares: hits counted in the database.

Several web processes (``mailer serve --workers N``, or several machines behind a load
balancer) must count one visitor's hits together, or the effective limit multiplies by the
number of processes. Each limit (a *bucket*: "subscribe", "login", …) counts hits per key in
fixed windows of ``window`` seconds, one row per key and window, and judges a new hit by the
sliding-window estimate: this window's hits plus the previous window's, weighted by how much
of the previous window still lies inside the last ``window`` seconds. That is within a few
per cent of a true sliding log while storing two numbers per key.

A hit is one bound ``INSERT … ON CONFLICT DO UPDATE … WHERE hits < cap RETURNING hits``
(PostgreSQL and SQLite alike): the row's own lock makes the check and the count one atomic
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

from sqlalchemy import BigInteger, Integer, String, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from mailer.storage.base import Base
from mailer.storage.db import Database

#: Seconds between two sweeps of stale rows by one limit in one process.
PRUNE_EVERY = 60


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

    def hit(self, key: str) -> Decision:
        """Count one hit for ``key`` when it fits under the limit; refused hits are not
        counted. Raises SQLAlchemy's OperationalError when the database is unreachable."""
        now = self.clock()
        start = int(now // self.window) * self.window
        key_hash = hashlib.sha256(key.encode("utf-8")).hexdigest()
        with self.db.session() as session:
            previous, current = self._counts(session, key_hash, start)
            carried = previous * (1 - (now - start) / self.window)
            cap = math.floor(self.limit - carried + 1e-9)
            if cap >= 1 and self._count_one(session, key_hash, start, cap):
                allowed = True
            else:
                allowed = False
        self._maybe_prune(now)
        if allowed:
            return Decision(True)
        return Decision(False, retry_after(now, start, self.window, self.limit, previous,
                                           max(current, cap)))

    def _counts(self, session: Session, key_hash: str, start: int) -> tuple[int, int]:
        rows = dict(session.execute(
            select(RateHit.window_start, RateHit.hits).where(
                RateHit.bucket == self.bucket, RateHit.key_hash == key_hash,
                RateHit.window_start.in_((start - self.window, start)))).all())
        return rows.get(start - self.window, 0), rows.get(start, 0)

    def _count_one(self, session: Session, key_hash: str, start: int, cap: int) -> bool:
        """The atomic step: add one hit unless the window already holds ``cap``."""
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        statement = dialect.insert(RateHit).values(
            bucket=self.bucket, key_hash=key_hash, window_start=start, hits=1,
            expires_at=start + 2 * self.window)
        statement = statement.on_conflict_do_update(
            index_elements=[RateHit.bucket, RateHit.key_hash, RateHit.window_start],
            set_={"hits": RateHit.hits + 1}, where=RateHit.hits < cap,
        ).returning(RateHit.hits)
        return session.execute(statement).first() is not None

    def _maybe_prune(self, now: float) -> None:
        with self._prune_lock:
            if now - self._last_prune < PRUNE_EVERY:
                return
            self._last_prune = now
        prune(self.db, now)


def prune(db: Database, now: float) -> int:
    """Delete every bucket's rows that no longer count; returns how many went."""
    with db.session() as session:
        result = session.execute(delete(RateHit).where(RateHit.expires_at < int(now)))
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
