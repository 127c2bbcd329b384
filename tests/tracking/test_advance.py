"""Folding a post's events into one advance per delivery, and leaving out the rows they would
not move (pure: no database; the merge itself is covered through ``ingest_events``)."""

from __future__ import annotations

from datetime import timedelta

from mailer.tracking import advance
from mailer.tracking.events import from_sendgrid
from mailer.tracking.ingest import DeliveryRef
from tests.tracking.factory import T0


def ref(delivery_id=1, status="accepted", **times) -> DeliveryRef:
    columns = {name: times.get(name) for name in advance.TIME_COLUMNS}
    return DeliveryRef(delivery_id, 7, 9, "jane@example.org", status, **columns)


def event(name, minute, **extra):
    at = int((T0 + timedelta(minutes=minute)).timestamp())
    return from_sendgrid({"event": name, "timestamp": at, "sg_event_id": f"{name}{minute}",
                          **extra})


def at(minute):
    return T0 + timedelta(minutes=minute)


def same(value):
    return value


def test_a_posts_events_fold_into_the_highest_status_and_earliest_times():
    row = ref(sent_at=None)
    posted = [event("open", 9), event("processed", 1), event("open", 5), event("delivered", 3)]
    [result] = advance.plan([(row, e) for e in posted], same)
    assert (result.delivery_id, result.status) == (1, "delivered")
    times = dict(zip(advance.TIME_COLUMNS, result.times, strict=True))
    assert (times["sent_at"], times["delivered_at"], times["opened_at"]) == (at(1), at(3), at(5))
    assert times["bounced_at"] is None


def test_deliveries_the_events_would_not_move_are_left_out():
    settled = ref(1, "delivered", sent_at=at(0), delivered_at=at(2), opened_at=at(4))
    moved = ref(2, "delivered", sent_at=at(0), delivered_at=at(2), opened_at=at(4))
    posted = [(settled, event("processed", 1)), (settled, event("delivered", 3)),
              (settled, event("open", 6)),
              (moved, event("open", 3))]  # an earlier open than the one on record
    assert [a.delivery_id for a in advance.plan(posted, same)] == [2]


def test_a_bounce_after_delivered_still_moves_the_row():
    row = ref(status="delivered", sent_at=at(0), delivered_at=at(2))
    [result] = advance.plan([(row, event("bounce", 8, type="bounce"))], same)
    assert result.status == "bounced"


def test_advances_come_in_delivery_id_order_for_the_row_locks():
    rows = [ref(i, sent_at=at(0)) for i in (30, 4, 17)]
    result = advance.plan([(r, event("delivered", 2)) for r in rows], same)
    assert [a.delivery_id for a in result] == [4, 17, 30]


def test_events_of_unknown_kinds_move_nothing():
    row = ref(status="pending", sent_at=None)
    assert advance.plan([(row, event("machine_opened", 1))], same) == []
