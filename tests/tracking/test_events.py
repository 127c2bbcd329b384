"""The mapping table from SendGrid event names to the closed set of normalized types."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailer.tracking import events as ev
from mailer.tracking.events import EVENT_TYPES, from_sendgrid, sendgrid_type


@pytest.mark.parametrize("raw,expected", [
    ({"event": "processed"}, "queued"),
    ({"event": "delivered"}, "delivered"),
    ({"event": "deferred"}, "deferred"),
    ({"event": "bounce", "type": "bounce"}, "bounced"),
    ({"event": "bounce"}, "bounced"),
    ({"event": "bounce", "type": "blocked"}, "blocked"),
    ({"event": "bounce", "type": "Blocked"}, "blocked"),
    ({"event": "dropped"}, "dropped"),
    ({"event": "open"}, "opened"),
    ({"event": "click"}, "clicked"),
    ({"event": "spamreport"}, "complained"),
    ({"event": "unsubscribe"}, "unsubscribed"),
    ({"event": "group_unsubscribe"}, "unsubscribed"),
    ({"event": "group_resubscribe"}, "resubscribed"),
    ({"event": "Delivered"}, "delivered"),
    ({"event": "machine_opened"}, "unknown"),
    ({"event": 7}, "unknown"),
    ({}, "unknown"),
])
def test_sendgrid_names_map_to_the_closed_set(raw, expected):
    assert sendgrid_type(raw) == expected
    assert expected in EVENT_TYPES


def test_normalized_event_keeps_everything_and_reads_our_custom_args():
    raw = {"email": " Jane.Doe@Example.ORG ", "event": "bounce", "type": "bounce",
           "reason": "550 5.1.1 user unknown", "status": "5.1.1", "timestamp": 1763650000,
           "sg_event_id": "abc", "sg_message_id": "XMSG.filterdrecv-1.0",
           "delivery_id": "42", "campaign_id": "7", "anything": {"nested": True}}
    event = from_sendgrid(raw)
    assert event.type == ev.BOUNCED
    assert event.email == "jane.doe@example.org"
    assert event.reason == "550 5.1.1 user unknown"
    assert event.occurred_at == datetime.fromtimestamp(1763650000, UTC)
    assert (event.delivery_id, event.campaign_id) == (42, 7)
    assert event.message_id_prefix == "XMSG"
    assert event.raw is raw


@pytest.mark.parametrize("value", ["", "abc", "-3", "0", None, True, "99999999999999999999999"])
def test_odd_delivery_ids_are_ignored(value):
    assert from_sendgrid({"event": "open", "delivery_id": value}).delivery_id is None


def test_event_without_an_id_gets_a_stable_digest():
    raw = {"event": "open", "email": "a@example.org", "timestamp": 1}
    first, again = from_sendgrid(raw), from_sendgrid(dict(reversed(list(raw.items()))))
    assert first.event_id.startswith("sha256:") and first.event_id == again.event_id
    assert from_sendgrid({**raw, "timestamp": 2}).event_id != first.event_id


def test_missing_or_bad_timestamp_falls_back_to_the_receipt_time():
    received = datetime(2026, 1, 2, tzinfo=UTC)
    for bad in (None, "soon", [], 1e30):
        assert from_sendgrid({"event": "open", "timestamp": bad},
                             received_at=received).occurred_at == received


@pytest.mark.parametrize("raw,reason", [
    ({"event": "deferred", "response": "421 try later"}, "421 try later"),
    ({"event": "click", "url": "https://senate.example/x"}, "https://senate.example/x"),
    ({"event": "bounce", "type": "blocked"}, "blocked"),
    ({"event": "delivered", "type": "x"}, None),
])
def test_reason_comes_from_the_field_that_explains_the_event(raw, reason):
    assert from_sendgrid(raw).reason == reason
