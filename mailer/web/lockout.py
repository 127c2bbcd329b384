"""Per-account lockout with backoff: repeated failed logins for one user name lock it.

Next to the per-IP login limit (which a password-guessing botnet spreads thin), this counts
failures for the *name*, from any address. After ``threshold`` failures in a row the name is
locked for ``base`` seconds; each further failure once the lock has passed doubles it, up to
``cap``. While locked, a login with that name is refused without looking at the password
(so guessing gains nothing). A successful login clears the count; failures older than
``forget_after`` seconds are forgotten.

Names are counted as typed, whether or not a user has that name, so the lockout answers an
unknown name exactly like a real one and tells nobody which names exist. The counts live in
the database (table ``login_lockouts``), so every web process shares them; each failure is
one atomic upsert, and rows whose failures are forgotten are deleted by one indexed DELETE at
most once a minute per process.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mailer.storage.db import Database
from mailer.web.models import LoginLockout

#: Seconds between two sweeps of forgotten rows by one process.
PRUNE_EVERY = 60


class AccountLockout:
    """The lockout policy over one database; ``clock`` gives Unix seconds.

    ``cap`` must stay below ``forget_after``: a row is deleted once its failures are forgotten,
    and its lock must have ended by then.
    """

    def __init__(self, db: Database, *, threshold: int = 5, base: int = 60, cap: int = 3600,
                 forget_after: int = 86400, clock: Callable[[], float] = time.time):
        if not 0 < cap < forget_after or threshold < 1 or base < 1:
            raise ValueError("a lockout needs threshold >= 1, base >= 1, 0 < cap < forget_after")
        self.db = db
        self.threshold, self.base, self.cap = threshold, base, cap
        self.forget_after = forget_after
        self.clock = clock
        self._last_prune = -math.inf
        self._prune_lock = threading.Lock()

    def locked_until(self, name: str) -> datetime | None:
        """When the lock on ``name`` ends (aware UTC), or None when it is not locked."""
        now = self._now()
        with self.db.session() as session:
            until = session.scalar(select(LoginLockout.locked_until)
                                   .where(LoginLockout.name_hash == _name_hash(name)))
        return until if until is not None and until > now else None

    def failed(self, name: str) -> datetime | None:
        """Count one failed login for ``name``; returns when the lock ends if this failure
        locked it, else None."""
        now = self._now()
        key = _name_hash(name)
        self._maybe_prune(now)
        with self.db.session() as session:
            failures = session.execute(self._count_failure(session, key, now)).scalar_one()
            if failures < self.threshold:
                return None
            delay = min(self.cap, self.base * 2 ** (failures - self.threshold))
            until = now + timedelta(seconds=delay)
            # Two processes failing at once: the longer lock wins.
            session.execute(update(LoginLockout)
                            .where(LoginLockout.name_hash == key,
                                   or_(LoginLockout.locked_until.is_(None),
                                       LoginLockout.locked_until < until))
                            .values(locked_until=until))
        return until

    def succeeded(self, name: str) -> None:
        """A successful login: the name's failures are forgotten."""
        with self.db.session() as session:
            session.execute(delete(LoginLockout).where(LoginLockout.name_hash == _name_hash(name)))

    def prune(self, now: datetime) -> int:
        """Delete the rows whose failures are forgotten (names sprayed by a bot pile up
        otherwise); returns how many went. One indexed DELETE."""
        cutoff = now - timedelta(seconds=self.forget_after)
        with self.db.session() as session:
            result = session.execute(delete(LoginLockout)
                                     .where(LoginLockout.last_failure_at < cutoff))
            return result.rowcount or 0

    def _maybe_prune(self, now: datetime) -> None:
        with self._prune_lock:
            if now.timestamp() - self._last_prune < PRUNE_EVERY:
                return
            self._last_prune = now.timestamp()
        self.prune(now)

    def _now(self) -> datetime:
        # Whole seconds: the lock's end is shown, and sent as Retry-After, to the second.
        return datetime.fromtimestamp(math.ceil(self.clock()), UTC)

    def _count_failure(self, session, key: str, now: datetime):
        """``INSERT … ON CONFLICT DO UPDATE … RETURNING failures``: one atomic step."""
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        statement = dialect.insert(LoginLockout).values(
            name_hash=key, failures=1, last_failure_at=now)
        stale = LoginLockout.last_failure_at < now - timedelta(seconds=self.forget_after)
        return statement.on_conflict_do_update(
            index_elements=[LoginLockout.name_hash],
            set_={"failures": case((stale, 1), else_=LoginLockout.failures + 1),
                  "last_failure_at": now},
        ).returning(LoginLockout.failures)


def _name_hash(name: str) -> str:
    return hashlib.sha256(name.strip().casefold().encode("utf-8")).hexdigest()
