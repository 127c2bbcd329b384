"""Requests in flight adapt to the provider's answer time (``pacing.InFlightWindow``): they
grow while a slow provider answers steadily, shrink when answers queue up, halve on a 429,
and never pass MAILER_MAX_IN_FLIGHT."""

import threading
import time

from mailer.delivery.engine import send_campaign
from mailer.delivery.pacing import InFlightWindow
from mailer.transports.errors import RateLimited
from mailer.transports.mock import MockTransport, accept_all, fail_batches
from tests.support.campaigns import add_subscribers, approved_campaign


def saturated(window: InFlightWindow) -> None:
    while window.has_room():
        window.started()


def test_steady_answers_with_every_slot_busy_grow_the_window_to_its_ceiling():
    window = InFlightWindow(start=2, ceiling=6)
    for _ in range(200):
        saturated(window)
        window.answered(0.25)
    assert window.size == 6


def test_the_window_does_not_grow_while_slots_stand_idle():
    window = InFlightWindow(start=2, ceiling=6)
    window.started()  # one of two slots used: the sender cannot feed more
    for _ in range(200):
        window.answered(0.25)
    assert window.size == 2


def test_answers_slowing_down_shrink_it_and_a_429_halves_it():
    window = InFlightWindow(start=8, ceiling=8)
    saturated(window)
    window.answered(0.1)
    window.answered(0.5)  # five times the fastest: requests are queueing
    assert window.size == 7
    window.throttled()
    assert window.size == 3
    for _ in range(3):  # growth waits a window's worth of answers after a 429
        window.answered(0.1)
    assert window.size == 3
    window.throttled(), window.throttled(), window.throttled()
    assert window.size == 1


def in_flight_counter(delay: float):
    """A handler that answers after ``delay`` and records the most batches held at once."""
    state = {"now": 0, "most": 0}
    lock = threading.Lock()

    def handler(batch):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(delay)
        with lock:
            state["now"] -= 1
        return accept_all(batch)
    return handler, state


def test_a_slow_provider_gets_more_requests_in_flight_than_the_send_started_with(db, settings):
    add_subscribers(db, 600)
    campaign_id = approved_campaign(db)
    handler, state = in_flight_counter(0.05)
    tuned = settings.model_copy(update={"concurrency": 2, "max_in_flight": 6, "batch_size": 5})
    summary = send_campaign(db, tuned, campaign_id, transport=MockTransport(handler))
    assert summary.accepted == 600
    assert 2 < state["most"] <= 6


def test_through_a_429_storm_the_adapting_send_reaches_everyone_exactly_once(db, settings):
    add_subscribers(db, 200)
    campaign_id = approved_campaign(db)
    handler, state = in_flight_counter(0.01)
    storm = fail_batches([RateLimited("429 too many requests")] * 6, then=handler)
    tuned = settings.model_copy(update={"concurrency": 4, "max_in_flight": 8, "batch_size": 10,
                                        "retry_backoff": 0.01, "retry_backoff_max": 0.02,
                                        "max_consecutive_errors": 50})
    transport = MockTransport(storm)
    summary = send_campaign(db, tuned, campaign_id, transport=transport)
    assert summary.accepted == 200 and state["most"] <= 8
    assert sorted(transport.accepted()) == sorted(set(transport.accepted()))
    assert len(transport.accepted()) == 200
