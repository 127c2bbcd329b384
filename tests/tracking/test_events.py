"""The mapping table from SendGrid event names to the closed set of normalized types."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mailer.tracking import events as ev
from mailer.tracking.events import EVENT_TYPES, from_sendgrid, sendgrid_type, split_array


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


# --- split_array: the posted array's elements with the text each was written as -------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10)
spacing = st.sampled_from(["", " ", "\n", "\t ", "\r\n  "])


@hsettings(max_examples=200, deadline=None)
@given(items=st.lists(json_values, max_size=6), gaps=st.lists(spacing, min_size=20,
                                                              max_size=20),
       ensure_ascii=st.booleans())
def test_split_array_agrees_with_json_loads_and_keeps_each_text(items, gaps, ensure_ascii):
    texts = [json.dumps(item, ensure_ascii=ensure_ascii, indent=None if i % 2 else 1)
             for i, item in enumerate(items)]
    body = gaps[0] + "[" + gaps[1] + (gaps[2] + "," + gaps[3]).join(texts) + gaps[4] + "]" \
        + gaps[5]
    parsed, slices = split_array(body)
    assert parsed == json.loads(body)
    assert slices == texts  # the exact text, whitespace inside an element included


@pytest.mark.parametrize("body", [
    "", "{}", "[", "]", "[1,]", "[,1]", "[1 2]", "[1]]", "[1] x", '["a" "b"]', "[1,,2]",
    "[{]", "nul", "[01]",
])
def test_split_array_refuses_what_is_not_one_json_array(body):
    with pytest.raises(ValueError):
        split_array(body)


def test_split_array_of_nothing():
    assert split_array(" [ ] ") == ([], [])


@hsettings(max_examples=200, deadline=None)
@given(items=st.lists(json_values, max_size=6), ensure_ascii=st.booleans(),
       tail=st.sampled_from(["", "\r\n", " \n"]))
def test_compact_bodies_keep_each_text_too(items, ensure_ascii, tail):
    """Compact JSON, as SendGrid posts it, goes through orjson; whatever orjson would read or
    write differently (escapes, float spelling, huge integers) falls back to the scanner,
    so the texts are the posted ones either way."""
    texts = [json.dumps(item, ensure_ascii=ensure_ascii, separators=(",", ":"))
             for item in items]
    body = "[" + ",".join(texts) + "]" + tail
    parsed, slices = split_array(body)
    assert parsed == json.loads(body) and slices == texts


@pytest.mark.parametrize("body", [
    '[{"a":1,"a":2}]', "[123456789012345678901234567890]", '[{"x":1e5}]', '["\\u00e9"]',
    '[{"a":NaN}]',
])
def test_what_orjson_reads_differently_is_split_exactly(body):
    parsed, slices = split_array(body)
    assert parsed == json.loads(body) and slices == [body[1:-1]]


def test_sendgrids_own_signed_body_takes_the_fast_path():
    from mailer.tracking.events import _split_compact
    from tests.tracking.test_webhook import SG_PAYLOAD

    assert _split_compact(SG_PAYLOAD) == split_array(SG_PAYLOAD)
    assert _split_compact(SG_PAYLOAD)[1] == [SG_PAYLOAD.strip()[1:-1]]
