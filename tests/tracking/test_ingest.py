"""Storing events once, matching them to deliveries, advancing delivery status monotonically."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from mailer.delivery.records import Delivery
from mailer.tracking.ingest import ingest_events
from mailer.tracking.models import DeliveryEventRow
from tests.tracking.factory import T0, make_campaign, make_delivery, make_subscriber, sg_event


@pytest.fixture
def one(db):
    """A campaign with one accepted delivery to jane@example.org."""
    with db.session() as session:
        campaign = make_campaign(session)
        subscriber = make_subscriber(session, "jane@example.org")
        delivery = make_delivery(session, campaign, subscriber)
    return delivery


def ingest(db, settings, events):
    with db.session() as session:
        return ingest_events(session, events, settings)


def reload(db, delivery) -> Delivery:
    with db.session() as session:
        return session.get(Delivery, delivery.id)


def at(minutes: int):
    return T0 + timedelta(minutes=minutes)


def test_duplicate_events_change_nothing(db, settings, one):
    events = [sg_event(one, "delivered", at=at(1)), sg_event(one, "open", at=at(5))]
    first = ingest(db, settings, events)
    assert (first.stored, first.duplicates, first.matched) == (2, 0, 2)
    before = reload(db, one)
    again = ingest(db, settings, events + events)
    assert (again.received, again.stored, again.duplicates) == (4, 0, 4)
    after = reload(db, one)
    assert [getattr(after, c) for c in ("status", "delivered_at", "opened_at", "updated_at")] == \
           [getattr(before, c) for c in ("status", "delivered_at", "opened_at", "updated_at")]
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryEventRow)) == 2


def test_late_processed_never_overwrites_delivered(db, settings, one):
    ingest(db, settings, [sg_event(one, "delivered", at=at(2))])
    ingest(db, settings, [sg_event(one, "processed", at=at(1))])
    row = reload(db, one)
    assert row.status == "delivered"
    assert row.delivered_at == at(2)


def test_same_batch_out_of_order_settles_on_the_most_advanced(db, settings, one):
    ingest(db, settings, [sg_event(one, "delivered", at=at(2)),
                          sg_event(one, "deferred", at=at(1)),
                          sg_event(one, "processed", at=at(0))])
    assert reload(db, one).status == "delivered"


def test_bounce_after_delivered_is_recorded_as_bounced(db, settings, one):
    ingest(db, settings, [sg_event(one, "delivered", at=at(1))])
    ingest(db, settings, [sg_event(one, "bounce", at=at(30), type="bounce",
                                   reason="550 mailbox gone")])
    row = reload(db, one)
    assert row.status == "bounced"
    assert (row.delivered_at, row.bounced_at) == (at(1), at(30))
    # ...and a delivered arriving later still cannot undo it.
    ingest(db, settings, [sg_event(one, "delivered", at=at(31))])
    assert reload(db, one).status == "bounced"


@pytest.mark.parametrize("start", ["in_doubt", "sending", "failed", "pending"])
def test_processed_proves_acceptance(db, settings, start):
    """The delivery engine relies on this to resolve in-doubt batches after a crash."""
    with db.session() as session:
        delivery = make_delivery(session, make_campaign(session),
                                 make_subscriber(session, f"{start}@example.org"),
                                 status=start, sent_at=None)
    ingest(db, settings, [sg_event(delivery, "processed", at=at(3))])
    row = reload(db, delivery)
    assert row.status == "accepted"
    assert row.sent_at == at(3)


def test_skipped_delivery_is_never_moved(db, settings):
    with db.session() as session:
        delivery = make_delivery(session, make_campaign(session),
                                 make_subscriber(session, "skip@example.org"), status="skipped")
    ingest(db, settings, [sg_event(delivery, "delivered")])
    assert reload(db, delivery).status == "skipped"


def test_engagement_sets_times_keeping_the_earliest_and_implies_delivery(db, settings, one):
    ingest(db, settings, [sg_event(one, "open", at=at(50)), sg_event(one, "click", at=at(51))])
    ingest(db, settings, [sg_event(one, "open", at=at(40)), sg_event(one, "open", at=at(60))])
    ingest(db, settings, [sg_event(one, "spamreport", at=at(70)),
                          sg_event(one, "unsubscribe", at=at(71))])
    row = reload(db, one)
    assert row.status == "delivered"  # an open proves the message arrived
    assert (row.opened_at, row.clicked_at) == (at(40), at(51))
    assert (row.complained_at, row.unsubscribed_at) == (at(70), at(71))


def test_matching_falls_back_to_the_message_id_and_address(db, settings):
    with db.session() as session:
        campaign = make_campaign(session)
        # One API request: one X-Message-Id shared by every recipient of the batch.
        a = make_delivery(session, campaign, make_subscriber(session, "a@example.org"),
                          message_id="BATCH1")
        b = make_delivery(session, campaign, make_subscriber(session, "b@example.org"),
                          message_id="BATCH1")
    summary = ingest(db, settings, [sg_event(b, "delivered", custom_args=False)])
    assert summary.matched == 1
    assert reload(db, b).status == "delivered"
    assert reload(db, a).status == "accepted"


def test_custom_args_for_another_address_are_not_trusted(db, settings, one):
    """A delivery id echoed with a different address (another system on the same SendGrid
    account, say) must not touch our row."""
    event = sg_event(one, "bounce", type="bounce", email="someone.else@example.org")
    event["sg_message_id"] = "OTHER.filter"
    summary = ingest(db, settings, [event])
    assert (summary.stored, summary.matched, summary.unmatched) == (1, 0, 1)
    assert reload(db, one).status == "accepted"


def test_unmatched_events_are_still_kept(db, settings):
    summary = ingest(db, settings, [{"event": "delivered", "email": "x@example.org",
                                     "sg_event_id": "lonely", "timestamp": 1763650000}, "junk"])
    assert (summary.stored, summary.unmatched, summary.invalid) == (1, 1, 1)
    with db.session() as session:
        row = session.scalar(select(DeliveryEventRow))
    assert (row.delivery_id, row.campaign_id, row.type) == (None, None, "delivered")


def test_event_rows_carry_the_delivery_campaign_and_subscriber(db, settings, one):
    ingest(db, settings, [sg_event(one, "delivered", at=at(1))])
    with db.session() as session:
        row = session.scalar(select(DeliveryEventRow))
    assert (row.delivery_id, row.campaign_id, row.subscriber_id) == \
           (one.id, one.campaign_id, one.subscriber_id)
    assert row.provider_message_id.startswith("MSGID.")


def test_many_events_in_one_call_cross_statement_chunks(db, settings, one):
    """Over 500 rows (one INSERT statement's worth), with duplicates of stored ones mixed in;
    the raw payload and its times survive the round trip unchanged."""
    first = [{"event": "open", "email": "jane@example.org", "sg_event_id": f"o{i}",
              "timestamp": 1763650000 + i, "delivery_id": str(one.id),
              "note": 'quotes " \\ {braces} ünïcode ☃', "nested": {"list": [1, None, True]}}
             for i in range(700)]
    assert ingest(db, settings, first[:300]).stored == 300
    summary = ingest(db, settings, first + [{**first[0], "sg_event_id": "new-one"}])
    assert (summary.stored, summary.duplicates) == (401, 300)
    with db.session() as session:
        rows = session.scalars(select(DeliveryEventRow).order_by(DeliveryEventRow.id)).all()
    by_id = {row.provider_event_id: row for row in rows}
    assert len(by_id) == 701
    assert by_id["o0"].raw == first[0]
    assert by_id["o699"].occurred_at.timestamp() == 1763650699
    assert reload(db, one).opened_at.timestamp() == 1763650000  # the earliest of them all


def test_text_postgresql_cannot_store_is_cleaned_not_fatal(db, settings):
    from mailer.tracking.events import needs_scrub, scrub

    body = ('[{"event": "bounce", "email": "a\\u0000b@example.org", "sg_event_id": "n\\u0000", '
            '"reason": "bad \\ud800 byte", "timestamp": 1763650000, "x\\u0000": ["\\udfff"]}]')
    assert needs_scrub(body) and not needs_scrub('[{"event": "open", "x": "\\u00e9"}]')
    import json

    events = scrub(json.loads(body))
    summary = ingest(db, settings, events)
    assert summary.stored == 1
    with db.session() as session:
        row = session.scalar(select(DeliveryEventRow))
    assert (row.email, row.provider_event_id) == ("ab@example.org", "n")
    assert row.reason == "bad \ufffd byte" and row.raw["x"] == ["\ufffd"]


def post_concurrently(db, settings, batches) -> list[Exception]:
    """Each batch ingested by its own thread at once (as SendGrid posts in parallel); returns
    the errors they raised."""
    import threading

    from mailer.tracking import ingest as ingest_module

    errors: list[Exception] = []

    def post(batch):
        try:
            ingest_module.ingest_with_retry(db, batch, settings)
        except Exception as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_posts_about_the_same_deliveries_store_each_event_once(db, settings):
    """SendGrid posts in parallel; overlapping batches (a retry racing the original) about
    the same deliveries must neither deadlock nor double-store."""
    with db.session() as session:
        campaign = make_campaign(session, status="sent")
        rows = [make_delivery(session, campaign, make_subscriber(session, f"c{i}@example.org"))
                for i in range(60)]
    delivered = [sg_event(r, "delivered", at=at(2), event_id=f"d{r.id}") for r in rows]
    opened = [sg_event(r, "open", at=at(9), event_id=f"o{r.id}") for r in rows]
    batches = [delivered + opened, list(reversed(opened + delivered)), opened, delivered]
    assert post_concurrently(db, settings, batches) == []
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryEventRow)) == 120
        states = session.execute(select(Delivery.status, Delivery.delivered_at,
                                        Delivery.opened_at)
                                 .where(Delivery.campaign_id == campaign.id)).all()
    assert set(states) == {("delivered", at(2), at(9))}


def test_events_that_change_nothing_leave_the_row_untouched(db, settings, one):
    ingest(db, settings, [sg_event(one, "delivered", at=at(2)), sg_event(one, "open", at=at(5))])
    before = reload(db, one).updated_at
    ingest(db, settings, [sg_event(one, "processed", at=at(0)), sg_event(one, "open", at=at(9))])
    assert reload(db, one).updated_at == before
    ingest(db, settings, [sg_event(one, "click", at=at(10))])
    assert reload(db, one).updated_at > before


def test_concurrent_overlapping_posts_never_deadlock(db, settings, monkeypatch):
    """Posts about the same deliveries in opposite orders queue behind each other's row locks
    rather than deadlock: no post needs the retry that a deadlock would force."""
    from mailer.tracking import ingest as ingest_module

    with db.session() as session:
        campaign = make_campaign(session, status="sent")
        rows = [make_delivery(session, campaign, make_subscriber(session, f"k{i}@example.org"))
                for i in range(200)]
    conflicts = []
    real = ingest_module.is_transient
    monkeypatch.setattr(ingest_module, "is_transient",
                        lambda exc: conflicts.append(exc) or real(exc))
    kinds = [("delivered", 2), ("open", 9), ("click", 11), ("processed", 1)]
    batches = []
    for index, (kind, minute) in enumerate(kinds * 2):
        events = [sg_event(r, kind, at=at(minute), event_id=f"{kind}{index}-{r.id}")
                  for r in rows]
        batches.append(events if index % 2 else list(reversed(events)))
    assert post_concurrently(db, settings, batches) == []
    assert conflicts == []
    with db.session() as session:
        states = set(session.execute(select(
            Delivery.status, Delivery.delivered_at, Delivery.opened_at, Delivery.clicked_at)
            .where(Delivery.campaign_id == campaign.id)).all())
    assert states == {("delivered", at(2), at(9), at(11))}
