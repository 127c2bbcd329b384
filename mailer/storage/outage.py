"""When the database goes away for a while: what counts as an outage, and how the long-running
processes (the foreground send, ``mailer worker``, the scheduler) wait it out.

This is the one place both questions are answered; the delivery and scheduling layers ask it.

- ``is_outage(exc)``: the connection itself failed (PostgreSQL restarting or shutting down,
  the connection refused, cut or invalidated; SQLite "database is locked" after its busy
  timeout, or a disk I/O error), or the disk under the database is full (``is_disk_full``).
  A constraint violation, a syntax error or a deadlock is not an outage: retrying it as one
  would hide a bug or a conflict that has its own handling.
- ``is_disk_full(exc)``: SQLite's SQLITE_FULL ("database or disk is full"), PostgreSQL's
  ``disk_full`` (53100), or an OSError ENOSPC/EDQUOT. A full disk is waited out like an
  outage (someone frees space; the transaction that hit it was rolled back), but it is told
  apart in every log and progress line ("disk full, retrying in 4 s"), because the fix is
  different: free space, not restart the database.
- ``Spell``: one stretch of the database being unreachable as a process sees it. It ends
  (gives up) ``MAILER_DB_OUTAGE_SECONDS`` after it began, or ``STOP_DEADLINE`` seconds after
  the process was asked to stop, whichever comes first.
- ``retrying(...)``: the tenacity policy: retry outage errors only, exponential backoff up to
  ``MAILER_DB_RETRY_MAX`` seconds (over the whole spell), stop when the spell gives up, then
  re-raise the last error.
- ``ride_out(fn, ...)``: call ``fn`` under that policy.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from tenacity import RetryCallState, Retrying, retry_if_exception

from mailer.settings import Settings

log = logging.getLogger("mailer.storage")
T = TypeVar("T")

#: Seconds a process asked to stop (SIGTERM, Ctrl-C) keeps trying to reach the database to
#: write what it holds before it gives up (and the caller journals it). Shorter than the usual
#: service managers' kill timeouts (10 s in Docker, 90 s under systemd).
STOP_DEADLINE = 5.0

#: PostgreSQL SQLSTATEs that mean the server cannot serve this connection right now: class 08
#: (connection exception), admin/crash shutdown, "cannot connect now" (starting up or shutting
#: down), too many connections.
_PG_OUTAGE_STATES = ("57P01", "57P02", "57P03", "53300")
_SQLITE_OUTAGE_TEXT = ("database is locked", "disk i/o error", "database table is locked")
#: PostgreSQL's disk_full (class 53, insufficient resources).
_PG_DISK_FULL = "53100"
_SQLITE_FULL_TEXT = "database or disk is full"
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` says the disk (or quota) under the database or a file is full."""
    if isinstance(exc, OSError):
        return exc.errno in _DISK_FULL_ERRNOS
    if not isinstance(exc, OperationalError):
        return False
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state is not None:
        return state == _PG_DISK_FULL
    return _SQLITE_FULL_TEXT in str(orig).lower()


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` is a connection-level database failure or a full disk: either is
    worth waiting out."""
    if is_disk_full(exc):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:  # SQLAlchemy's own verdict: the connection is gone
        return True
    if not isinstance(exc, OperationalError):
        return False
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state is not None:
        return state.startswith("08") or state in _PG_OUTAGE_STATES
    message = str(orig).lower()
    if type(orig).__module__.startswith("sqlite3"):
        return any(part in message for part in _SQLITE_OUTAGE_TEXT)
    # psycopg reports a failed connect or a dropped connection without a SQLSTATE.
    return True


def reason(exc: BaseException) -> str:
    """The first line of what the driver said (never the URL or its password)."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def trouble(exc: BaseException) -> str:
    """How a log or progress line names the failure: ``disk full`` or ``database
    unreachable``."""
    return "disk full" if is_disk_full(exc) else "database unreachable"


class Spell:
    """One stretch of the database being away. ``over()`` is the tenacity stop condition; once
    it returned True the spell stays exhausted, so a second ride-out in the same process does
    not start a fresh clock."""

    def __init__(self, settings: Settings, stop: threading.Event | None = None):
        self.limit = settings.db_outage_seconds
        self.retry_max = settings.db_retry_max
        self.stop = stop
        self.began = time.monotonic()
        self.stopped_at: float | None = None
        self.exhausted = False
        self.attempts = 0
        self.last_error = ""
        #: ``trouble()`` of the last error: what the progress line says is wrong.
        self.trouble = "database unreachable"

    def saw(self, exc: BaseException) -> None:
        """Remember ``exc`` as the latest failure of this spell."""
        self.last_error = reason(exc)
        self.trouble = trouble(exc)

    def over(self, _state: RetryCallState | None = None) -> bool:
        now = time.monotonic()
        if self.stop is not None and self.stop.is_set() and self.stopped_at is None:
            self.stopped_at = now
        if now - self.began >= self.limit or (
                self.stopped_at is not None and now - self.stopped_at >= STOP_DEADLINE):
            self.exhausted = True
        return self.exhausted

    def next_wait(self, _state: RetryCallState | None = None) -> float:
        """Exponential backoff over the whole spell (0.25 s, 0.5 s, 1 s … up to
        ``MAILER_DB_RETRY_MAX``), counted across every retry policy made for it: a sender
        whose write went through but whose next one failed again (a disk still full) keeps
        backing off instead of starting over at 0.25 s."""
        return min(self.retry_max, 0.25 * 2 ** min(self.attempts, 32))

    def sleep(self, seconds: float) -> None:
        """Wait between tries; a stop request wakes it, after which tries come every second
        at most until ``STOP_DEADLINE``."""
        if self.stop is not None and not self.stop.is_set():
            self.stop.wait(seconds)
        else:
            time.sleep(min(seconds, 1.0))


def retrying(spell: Spell, *, sleep: Callable[[float], None] | None = None,
             on_wait: Callable[[Spell, float], None] | None = None,
             what: str = "database") -> Retrying:
    """The retry policy for one spell. ``sleep`` replaces the wait (a sender collects its
    batches in flight meanwhile); ``on_wait(spell, seconds)`` hears of every retry coming."""

    def before_sleep(state: RetryCallState) -> None:
        if state.outcome is not None and state.outcome.exception() is not None:
            spell.saw(state.outcome.exception())
        announce_retry(spell, state.next_action.sleep if state.next_action else 0.0,
                       what=what, on_wait=on_wait)

    return Retrying(retry=retry_if_exception(is_outage), stop=spell.over,
                    wait=spell.next_wait,
                    sleep=sleep or spell.sleep, before_sleep=before_sleep, reraise=True)


def announce_retry(spell: Spell, seconds: float, *, what: str,
                   on_wait: Callable[[Spell, float], None] | None = None) -> None:
    """Count one more try of ``spell`` coming in ``seconds`` and say so: the log line
    ("``what``: disk full (…); retrying in 0.5 s") and ``on_wait(spell, seconds)``."""
    spell.attempts += 1
    log.warning("%s: %s (%s); retrying in %s s", what, spell.trouble, spell.last_error,
                seconds_text(seconds))
    if on_wait is not None:
        on_wait(spell, seconds)


def seconds_text(seconds: float) -> str:
    """``8`` or ``0.5``: whole seconds unless under one."""
    return f"{seconds:.0f}" if seconds >= 1 else f"{seconds:.1f}"


def ride_out(fn: Callable[[], T], settings: Settings, *, stop: threading.Event | None = None,
             what: str = "database", spell: Spell | None = None) -> T:
    """``fn()``, tried again through an outage; raises its last error when the spell gives up
    (and any error that is not an outage at once)."""
    return retrying(spell or Spell(settings, stop), what=what)(fn)


def ping(engine) -> None:
    """One round trip on a fresh (pre-pinged) pooled connection; raises when unreachable."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
