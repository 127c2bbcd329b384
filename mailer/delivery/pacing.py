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
