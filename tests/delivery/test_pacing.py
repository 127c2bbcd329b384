import threading
import time
from datetime import UTC, datetime

from mailer.delivery.pacing import RateLimiter, RetryWait
from mailer.delivery.progress import waiting_reason
from mailer.delivery.recovery import Resolution
from mailer.settings import Settings
from mailer.transports.errors import RateLimited, TemporaryFailure


def test_rate_limit_spaces_batches_by_their_size():
    limiter = RateLimiter(rate=200)  # messages per second
    stop = threading.Event()
    started = time.monotonic()
    for _ in range(3):
        assert limiter.acquire(20, stop)
    # 60 messages at 200/s: the third batch may start only after 2 x 20 / 200 = 0.2 s.
    assert time.monotonic() - started >= 0.19


def test_unlimited_never_waits_and_stop_interrupts_a_wait():
    assert RateLimiter(rate=0).acquire(10_000, threading.Event())
    limiter = RateLimiter(rate=1)
    stop = threading.Event()
    assert limiter.acquire(5, stop)
    stop.set()
    assert limiter.acquire(5, stop) is False  # would wait 5 s; gives up at once


class _State:
    def __init__(self, exc, attempt=1):
        self.attempt_number = attempt
        self.outcome = type("O", (), {"exception": lambda _self: exc})()
        self.upcoming_sleep = 0
        self.idle_for = 0


def test_429_waits_until_the_reset_and_other_errors_back_off_boundedly():
    from datetime import UTC, datetime, timedelta

    wait = RetryWait(base=0.5, maximum=4)
    reset = datetime.now(UTC) + timedelta(seconds=3)
    assert 2.5 < wait(_State(RateLimited("429", reset_at=reset))) <= 3.3
    delays = [wait(_State(TemporaryFailure("503"), attempt=n)) for n in range(1, 12)]
    assert all(0 < d <= 4.5 for d in delays)
    assert max(delays) > 2  # it does grow


def test_the_waiting_line_gives_the_evidence_deadline_in_the_office_zone():
    settings = Settings(database_url="sqlite://", timezone="America/Chicago")
    res = Resolution(waiting=3, next_deadline=datetime(2026, 12, 7, 18, 5, 9, tzinfo=UTC))
    line = waiting_reason({"pending": 2}, res, settings)
    assert "3 in doubt, waiting for provider evidence until 12:05:09 CST" in line
    assert "UTC" not in line and "2 pending" in line
