import base64
import json
import socket
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sendgrid.helpers.eventwebhook import EventWebhook

from mailer.transports.base import Batch, CompiledMessage, Recipient
from mailer.transports.errors import (
    AmbiguousFailure,
    AuthFailure,
    BadRequest,
    RateLimited,
    TemporaryFailure,
)
from mailer.transports.sendgrid import (
    SendGridTransport,
    _JSONBody,
    build_payload,
    encode_payload,
    error_from_response,
)
from tests.transports.helpers import message, recipient

KEY = "SG.test-key"


def test_payload_has_one_personalization_per_recipient_with_our_ids():
    batch = Batch(message(), [recipient(1), recipient(2, name=None)])
    payload = build_payload(batch)
    first, second = payload["personalizations"]
    assert first["to"] == [{"email": "person1@example.org", "name": "Pat Doe"}]
    assert second["to"] == [{"email": "person2@example.org"}]
    assert first["custom_args"] == {"campaign_id": "7", "delivery_id": "101"}
    assert all(isinstance(v, str) for p in payload["personalizations"]
               for v in p["custom_args"].values())
    assert first["substitutions"]["-unsub_t-"].endswith("/unsubscribe/tok1")
    assert first["headers"] == {
        "List-Unsubscribe": "<https://news.senator.example.gov/unsubscribe/tok1>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    assert "headers" not in payload  # one-click travels with each recipient's own link


def test_payload_sender_content_and_categories():
    payload = build_payload(Batch(message(categories=tuple(f"c{i}" for i in range(12))),
                                  [recipient(1)]))
    assert payload["from"] == {"email": "news@senator.example.gov",
                               "name": "Office of the Senator"}
    assert payload["reply_to"] == {"email": "press@senator.example.gov"}
    assert [c["type"] for c in payload["content"]] == ["text/plain", "text/html"]
    assert payload["subject"].startswith("Heitkamp")
    assert len(payload["categories"]) == 10  # SendGrid's limit


def test_payload_is_pure_and_json_serializable():
    batch = Batch(message(), [recipient(i) for i in range(3)])
    assert build_payload(batch) == build_payload(batch)
    assert json.loads(json.dumps(build_payload(batch))) == build_payload(batch)


_text = st.text(max_size=12)
_recipients = st.builds(
    Recipient, email=_text, name=st.none() | _text,
    delivery_id=st.none() | st.integers(0, 2**40), subscriber_id=st.none() | st.integers(0, 9),
    substitutions=st.dictionaries(_text, _text, max_size=4),
    headers=st.dictionaries(st.sampled_from(["List-Unsubscribe", "X-Other", "X-\"q"]), _text,
                            max_size=2))


@given(people=st.lists(_recipients, max_size=5), campaign=st.none() | st.integers(0, 99),
       subject=_text, reply_to=st.none() | _text)
def test_encoded_payload_is_the_same_document_as_build_payload(people, campaign, subject,
                                                               reply_to):
    # Quotes, backslashes, control and non-ASCII characters, empty maps, missing ids.
    batch = Batch(message(subject=subject, reply_to=reply_to, campaign_id=campaign), people)
    assert json.loads(encode_payload(batch)) == build_payload(batch)


def test_encoded_payload_of_a_message_without_extras():
    bare = CompiledMessage(subject="s", html="<p>h</p>", text="t", from_email="a@b.gov",
                           from_name="")
    batch = Batch(bare, [recipient(1)])
    assert json.loads(encode_payload(batch)) == build_payload(batch)


def test_text_orjson_refuses_is_still_encoded_as_the_same_document():
    # A lone surrogate: orjson raises on it, json.dumps escapes it.
    batch = Batch(message(), [recipient(1, name="Pat \ud800 Doe")])
    encoded = encode_payload(batch)
    assert json.loads(encoded) == build_payload(batch)
    assert b"\\ud800" in encoded


def test_the_posted_body_logs_as_its_size_not_its_contents():
    body = _JSONBody(b'{"a": 1}').encode("utf-8")
    assert body == b'{"a": 1}' and str(body) == "<8 bytes of JSON>"
    assert "{data}".format(data=body) == "<8 bytes of JSON>"  # noqa: UP032 (as the client logs)


def test_send_is_accepted_and_recorded(standin):
    transport = SendGridTransport(KEY, standin.url, timeout=5)
    results = transport.send(Batch(message(), [recipient(1), recipient(2)]))
    assert [r.accepted for r in results] == [True, True]
    assert results[0].provider_message_id and results[0].provider_message_id == \
        results[1].provider_message_id
    assert standin.delivery_counts() == {"101": 1, "102": 1}
    assert standin.accepted[0].substitutions["-name_t-"] == "Pat Doe"


def test_wrong_key_is_an_auth_failure(standin):
    with pytest.raises(AuthFailure, match="401"):
        SendGridTransport("SG.wrong", standin.url, timeout=5).send(
            Batch(message(), [recipient(1)]))
    assert standin.accepted == []


def test_429_carries_the_reset_time(standin):
    standin.inject("429", reset_in=5)
    with pytest.raises(RateLimited) as caught:
        SendGridTransport(KEY, standin.url, timeout=5).send(Batch(message(), [recipient(1)]))
    assert caught.value.reset_at > datetime.now(UTC)


@pytest.mark.parametrize("kind", ["500", "503"])
def test_server_errors_are_temporary_and_not_ambiguous(standin, kind):
    standin.inject(kind)
    with pytest.raises(TemporaryFailure) as caught:
        SendGridTransport(KEY, standin.url, timeout=5).send(Batch(message(), [recipient(1)]))
    assert not isinstance(caught.value, AmbiguousFailure)
    assert caught.value.status == int(kind)


def test_reset_after_the_request_is_ambiguous(standin):
    standin.inject("reset")
    with pytest.raises(AmbiguousFailure):
        SendGridTransport(KEY, standin.url, timeout=5).send(Batch(message(), [recipient(1)]))


def test_timeout_waiting_for_the_answer_is_ambiguous(standin):
    standin.inject("delay", delay_ms=1500)
    with pytest.raises(AmbiguousFailure):
        SendGridTransport(KEY, standin.url, timeout=0.3).send(Batch(message(), [recipient(1)]))


def test_unreachable_host_is_temporary_and_certainly_not_sent():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TemporaryFailure) as caught:
        SendGridTransport(KEY, f"http://127.0.0.1:{port}", timeout=2).send(
            Batch(message(), [recipient(1)]))
    assert not isinstance(caught.value, AmbiguousFailure)


def test_bad_address_is_a_bad_request_about_recipients(standin):
    batch = Batch(message(), [recipient(1), recipient(2, email="not-an-address")])
    with pytest.raises(BadRequest) as caught:
        SendGridTransport(KEY, standin.url, timeout=5).send(batch)
    assert caught.value.about_recipients
    assert caught.value.errors[0].field == "personalizations.1.to.0.email"


def test_duplicate_address_across_personalizations_is_refused(standin):
    batch = Batch(message(), [recipient(1), recipient(2, email="PERSON1@example.org")])
    with pytest.raises(BadRequest, match="unique"):
        SendGridTransport(KEY, standin.url, timeout=5).send(batch)


def test_more_than_1000_recipients_is_refused(standin):
    batch = Batch(message(), [recipient(i) for i in range(1001)])
    with pytest.raises(BadRequest, match="1000"):
        SendGridTransport(KEY, standin.url, timeout=10).send(batch)


def test_message_wide_problem_is_not_about_recipients(standin):
    with pytest.raises(BadRequest) as caught:
        SendGridTransport(KEY, standin.url, timeout=5).send(
            Batch(message(from_email="nobody"), [recipient(1)]))
    assert not caught.value.about_recipients


def test_error_mapping_without_body():
    assert isinstance(error_from_response(403, b"", {}), AuthFailure)
    assert isinstance(error_from_response(502, b"<html>", {}), TemporaryFailure)
    limited = error_from_response(429, b"{}", {"X-RateLimit-Reset": "2000000000"})
    assert limited.reset_at == datetime.fromtimestamp(2_000_000_000, UTC)


def test_standin_webhook_signature_verifies_with_the_official_helper(standin):
    events = standin.processed_events(standin.accepted)
    body = json.dumps(events)
    signature = standin.sign("1700000000", body.encode())
    helper = EventWebhook()
    key = helper.convert_public_key_to_ecdsa(standin.public_key_b64)
    assert helper.verify_signature(body, signature, "1700000000", key)
    assert not helper.verify_signature(body + " ", signature, "1700000000", key)
    assert base64.b64decode(standin.public_key_b64)


def test_a_body_over_20_mb_is_refused_with_413(standin):
    from mailer.transports.errors import PayloadTooLarge

    huge = message(html="<p>" + "x" * (21 * 1024 * 1024) + "</p>")
    with pytest.raises(PayloadTooLarge, match="413"):
        SendGridTransport(KEY, standin.url, timeout=10).send(Batch(huge, [recipient(1)]))
    assert standin.accepted == []


@pytest.mark.parametrize("body", [b"{", b"", b"NaN", b"\xff\xfe", b'{"from": {"email": "a@b'])
def test_the_standin_answers_a_body_that_is_not_json_with_400(standin, body):
    # As the real API does: strict JSON in UTF-8, or a 400 that says so (never a 500).
    status, _, data = standin.handle_send(f"Bearer {standin.api_key}", body)
    assert status == 400
    assert data["errors"][0]["message"] == "Bad Request"
    assert standin.accepted == []
