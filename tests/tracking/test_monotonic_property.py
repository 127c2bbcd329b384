"""Whatever order and batching the provider's events arrive in, a delivery ends in the same
state: the most advanced status any of them proves, and the earliest time of each kind."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mailer.delivery.records import Delivery
from mailer.tracking.advance import EVENT_STATUS, EVENT_TIME_COLUMN, STATUS_RANK
from mailer.tracking.ingest import ingest_events
from tests.tracking.factory import T0, make_campaign, make_delivery, make_subscriber, sg_event

KINDS = [("processed", {}), ("deferred", {}), ("delivered", {}), ("open", {}), ("click", {}),
         ("bounce", {"type": "bounce"}), ("bounce", {"type": "blocked"}), ("dropped", {}),
         ("spamreport", {}), ("unsubscribe", {})]
TYPE_OF = {"processed": "queued", "deferred": "deferred", "delivered": "delivered",
           "open": "opened", "click": "clicked", "dropped": "dropped",
           "spamreport": "complained", "unsubscribe": "unsubscribed"}

events_strategy = st.lists(
    st.tuples(st.integers(0, len(KINDS) - 1), st.integers(0, 600)), min_size=1, max_size=8)


def expected(start: str, chosen) -> tuple[str, dict]:
    status, times = start, {}
    for kind_index, minute in chosen:
        name, extra = KINDS[kind_index]
        kind = "blocked" if extra.get("type") == "blocked" else (
            "bounced" if name == "bounce" else TYPE_OF[name])
        target = EVENT_STATUS.get(kind)
        if target and STATUS_RANK[target] > STATUS_RANK[status]:
            status = target
        column = EVENT_TIME_COLUMN.get(kind)
        if column:
            at = T0 + timedelta(minutes=minute)
            times[column] = min(times.get(column, at), at)
    return status, times


@hsettings(max_examples=40, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chosen=events_strategy, start=st.sampled_from(["accepted", "in_doubt", "sending"]),
       cuts=st.lists(st.integers(0, 8), max_size=3), data=st.data())
def test_final_state_does_not_depend_on_arrival(db, settings, chosen, start, cuts, data):
    with db.session() as session:
        campaign = make_campaign(session, status="sent")
        subscriber = make_subscriber(session, f"h{campaign.id}@example.org")
        delivery = make_delivery(session, campaign, subscriber, status=start, sent_at=None)
    events = [sg_event(delivery, KINDS[k][0], at=T0 + timedelta(minutes=m), **KINDS[k][1])
              for k, m in chosen]
    order = data.draw(st.permutations(events))
    bounds = sorted({0, len(order), *(c % (len(order) + 1) for c in cuts)})
    for low, high in zip(bounds, bounds[1:], strict=False):
        with db.session() as session:
            ingest_events(session, order[low:high], settings)
    with db.session() as session:  # a full replay changes nothing
        assert ingest_events(session, events, settings).stored == 0
    status, times = expected(start, chosen)
    with db.session() as session:
        row = session.get(Delivery, delivery.id)
    assert row.status == status
    for column in ("sent_at", "delivered_at", "opened_at", "clicked_at", "bounced_at",
                   "complained_at", "unsubscribed_at"):
        assert getattr(row, column) == times.get(column), column
