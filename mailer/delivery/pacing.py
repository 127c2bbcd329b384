"""Pacing and retry timing for the send loop."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime

from tenacity import RetryCallState, wait_exponential_jitter

from mailer.transports.errors import RateLimited

#: The longest a 429 may hold a batch before the next try, whatever X-RateLimit-Reset says.
MAX_RATE_LIMIT_WAIT = 300.0


class RateLimiter:
    """MAILER_RATE_LIMIT as a token bucket refilled at ``rate`` messages per second, holding
    at most one batch: ``acquire(n)`` returns when ``n`` messages may go. ``hold_until`` stops
    everything until a moment (a 429's reset time). Thread-safe."""

    def __init__(self, rate: float):
        self.rate = rate
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self, n: int, stop: threading.Event) -> bool:
        """Wait for room for ``n`` messages; False when ``stop`` was set while waiting."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            if self.rate > 0:
                self._next = start + n / self.rate
            wait = start - now
        return not stop.wait(wait) if wait > 0 else not stop.is_set()

    def hold_until(self, moment: datetime) -> None:
        delay = min((moment - datetime.now(UTC)).total_seconds(), MAX_RATE_LIMIT_WAIT)
        if delay > 0:
            with self._lock:
                self._next = max(self._next, time.monotonic() + delay)


class RetryWait:
    """tenacity ``wait``: a 429 waits until its X-RateLimit-Reset (plus a little jitter, so
    threads do not stampede); anything else backs off exponentially with jitter."""

    def __init__(self, base: float, maximum: float):
        self._backoff = wait_exponential_jitter(multiplier=base, max=maximum, jitter=base)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.reset_at is not None:
            delay = (exc.reset_at - datetime.now(UTC)).total_seconds()
            return min(max(delay, 0.0), MAX_RATE_LIMIT_WAIT) + random.uniform(0, 0.25)
        return self._backoff(state)


class InFlightWindow:
    """How many requests a send keeps in flight: from MAILER_CONCURRENCY it adapts to the
    provider's answer time, up to MAILER_MAX_IN_FLIGHT, in the way TCP Vegas sizes a
    congestion window. Thread-safe.

    - While answers come back about as fast as the fastest seen (within ``SLOWER``), and every
      slot is busy, the window grows by one for each window's worth of answers: a slow but
      uncongested API (250 ms a request) gets enough requests in flight to hide its latency.
    - When answers slow down past that (the provider, or our own CPU, queueing the extra
      requests), it shrinks by one: more in flight would only wait longer.
    - A 429 halves it, and growth waits for a window's worth of answers after it.
    """

    #: An answer this many times slower than the fastest seen means requests are queueing.
    SLOWER = 2.0
    #: Jitter allowance (seconds) so a fast local provider's noise does not read as queueing.
    SLACK = 0.02

    def __init__(self, start: int, ceiling: int):
        self.ceiling = max(1, ceiling)
        self._size = max(1, min(start, self.ceiling))
        self._fastest: float | None = None
        self._good = 0
        self._busy = 0
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return self._size

    def has_room(self) -> bool:
        return self._busy < self._size

    def started(self) -> None:
        with self._lock:
            self._busy += 1

    def finished(self) -> None:
        with self._lock:
            self._busy = max(0, self._busy - 1)

    def answered(self, seconds: float) -> None:
        """One request answered (accepted or refused) after ``seconds``."""
        with self._lock:
            self._fastest = seconds if self._fastest is None else min(self._fastest, seconds)
            if seconds > self._fastest * self.SLOWER + self.SLACK:
                self._size = max(1, self._size - 1)
                self._good = 0
                return
            if self._busy < self._size:
                return  # not every slot is used: a bigger window would change nothing
            self._good += 1
            if self._good >= self._size and self._size < self.ceiling:
                self._size += 1
                self._good = 0

    def throttled(self) -> None:
        """The provider said 429: halve, and hold growth back for a window's worth."""
        with self._lock:
            self._size = max(1, self._size // 2)
            self._good = -self._size
