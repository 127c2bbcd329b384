"""The signed Event Webhook: SendGrid's own published test vector, every tampering, our own
key pair, replay protection, size and JSON limits, and 5xx when storage fails."""

from __future__ import annotations

import base64
import json
import time

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from mailer.tracking import ingest as tracking_ingest
from mailer.tracking import webhook
from mailer.tracking.models import DeliveryEventRow
from mailer.tracking.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookRefused, verify
from mailer.web.app import create_app

# Copied exactly from sendgrid/sendgrid-python, test/unit/test_eventwebhook.py.
SG_PUBLIC_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+"
    "2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
SG_SIGNATURE = (
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
)
SG_TIMESTAMP = "1600112502"
SG_PAYLOAD = json.dumps(
    [
        {
            "email": "hello@world.com",
            "event": "dropped",
            "reason": "Bounced Address",
            "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
            "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",  # noqa: E501
            "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
            "timestamp": 1600112492,
        }
    ], sort_keys=True, separators=(",", ":")
) + "\r\n"
# The "bad key" and "bad signature" values from the same unit test.
SG_OTHER_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo"
    "7aNDthvj+y7GjUuFDb/R1NGe1OPzpA=="
)
SG_OTHER_SIGNATURE = (
    "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0="
)


def _flip_byte(text: str, index: int) -> str:
    return text[:index] + chr(ord(text[index]) ^ 1) + text[index + 1:]


TAMPERINGS = {
    "payload byte": (_flip_byte(SG_PAYLOAD, 40), SG_SIGNATURE, SG_TIMESTAMP, SG_PUBLIC_KEY),
    "payload without CRLF": (SG_PAYLOAD.rstrip(), SG_SIGNATURE, SG_TIMESTAMP, SG_PUBLIC_KEY),
    "timestamp": (SG_PAYLOAD, SG_SIGNATURE, "1600112503", SG_PUBLIC_KEY),
    "signature": (SG_PAYLOAD, SG_OTHER_SIGNATURE, SG_TIMESTAMP, SG_PUBLIC_KEY),
    "other key": (SG_PAYLOAD, SG_SIGNATURE, SG_TIMESTAMP, SG_OTHER_KEY),
}


@pytest.fixture
def sg_settings(settings):
    """Settings holding SendGrid's test key, age check off (the vector is from 2020)."""
    return settings.model_copy(update={
        "sendgrid_webhook_public_key": SecretStr(SG_PUBLIC_KEY), "webhook_max_age": 0})


@pytest.fixture
def client_for(db):
    def build(settings) -> TestClient:
        return TestClient(create_app(settings, db))
    return build


def _post(client, body, signature, timestamp, **headers):
    sent = {"Content-Type": "application/json", **headers}
    if signature is not None:
        sent[SIGNATURE_HEADER] = signature
    if timestamp is not None:
        sent[TIMESTAMP_HEADER] = timestamp
    return client.post(webhook.PATH, content=body, headers=sent)


def _stored(db) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(DeliveryEventRow))


# --- the helper itself ------------------------------------------------------------------------

def test_sendgrid_vector_verifies_with_the_helper():
    helper = EventWebhook()
    key = helper.convert_public_key_to_ecdsa(SG_PUBLIC_KEY)
    assert helper.verify_signature(SG_PAYLOAD, SG_SIGNATURE, SG_TIMESTAMP, key) is True


@pytest.mark.parametrize("name", TAMPERINGS)
def test_each_tampering_is_refused_by_the_helper(name):
    payload, signature, timestamp, key = TAMPERINGS[name]
    assert EventWebhook(key).verify_signature(payload, signature, timestamp) is False


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_our_verify_accepts_the_vector_and_refuses_tampering(sg_settings):
    assert verify(sg_settings, SG_PAYLOAD.encode(), SG_SIGNATURE, SG_TIMESTAMP) == SG_PAYLOAD
    for payload, signature, timestamp, key in TAMPERINGS.values():
        settings = sg_settings.model_copy(update={"sendgrid_webhook_public_key": SecretStr(key)})
        with pytest.raises(WebhookRefused) as refused:
            verify(settings, payload.encode(), signature, timestamp)
        assert refused.value.status == 403


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_age_check_uses_the_setting(sg_settings):
    aged = sg_settings.model_copy(update={"webhook_max_age": 300})
    with pytest.raises(WebhookRefused) as refused:
        verify(aged, SG_PAYLOAD.encode(), SG_SIGNATURE, SG_TIMESTAMP)
    assert refused.value.status == 403 and "MAILER_WEBHOOK_MAX_AGE" in refused.value.reason
    # Within the window it passes: the clock of the vector's own day.
    now = int(SG_TIMESTAMP) + 299
    assert verify(aged, SG_PAYLOAD.encode(), SG_SIGNATURE, SG_TIMESTAMP, now=now)


# --- through HTTP -----------------------------------------------------------------------------

def test_endpoint_stores_the_sendgrid_vector(sg_settings, client_for, db):
    response = _post(client_for(sg_settings), SG_PAYLOAD, SG_SIGNATURE, SG_TIMESTAMP)
    assert response.status_code == 204, response.text
    with db.session() as session:
        row = session.scalar(select(DeliveryEventRow))
    assert row.provider_event_id == "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA"
    assert (row.type, row.reason, row.email) == ("dropped", "Bounced Address", "hello@world.com")
    assert row.occurred_at.timestamp() == 1600112492
    assert row.raw["smtp-id"] == "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>"


@pytest.mark.parametrize("name", TAMPERINGS)
def test_endpoint_refuses_each_tampering(name, sg_settings, client_for, db):
    payload, signature, timestamp, key = TAMPERINGS[name]
    settings = sg_settings.model_copy(update={"sendgrid_webhook_public_key": SecretStr(key)})
    response = _post(client_for(settings), payload, signature, timestamp)
    assert response.status_code == 403
    assert _stored(db) == 0


def test_endpoint_refuses_an_old_timestamp_when_age_is_checked(sg_settings, client_for, db):
    settings = sg_settings.model_copy(update={"webhook_max_age": 300})
    response = _post(client_for(settings), SG_PAYLOAD, SG_SIGNATURE, SG_TIMESTAMP)
    assert response.status_code == 403
    assert _stored(db) == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("signature,timestamp,status", [
    (None, SG_TIMESTAMP, 401),
    (SG_SIGNATURE, None, 401),
    ("", SG_TIMESTAMP, 401),
    ("not base64 at all!", SG_TIMESTAMP, 403),
    (base64.b64encode(b"\x30\x02\x00\x00").decode(), SG_TIMESTAMP, 403),  # bad DER
    (SG_SIGNATURE, "16001125O2", 403),  # letter O: not a Unix time
    (SG_SIGNATURE, "-1600112502", 403),
])
def test_endpoint_refuses_missing_or_malformed_headers(
        signature, timestamp, status, sg_settings, client_for, db):
    response = _post(client_for(sg_settings), SG_PAYLOAD, signature, timestamp)
    assert response.status_code == status
    assert _stored(db) == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_endpoint_without_a_configured_key_refuses_with_503(settings, client_for, db):
    response = _post(client_for(settings), SG_PAYLOAD, SG_SIGNATURE, SG_TIMESTAMP)
    assert response.status_code == 503
    assert _stored(db) == 0


# --- our own key pair (tests/tracking/conftest.py): fresh timestamps, limits, JSON, storage failure

def _events(n: int, prefix: str = "e") -> bytes:
    return json.dumps([{"email": f"p{i}@example.org", "event": "delivered",
                        "sg_event_id": f"{prefix}{i}", "timestamp": 1763650000 + i}
                       for i in range(n)]).encode()


def test_each_event_is_kept_as_the_text_it_was_posted_as(own_settings, signer, client_for,
                                                          db):
    """The event log keeps SendGrid's own text of each event (its key order, its spacing,
    its escapes), not a re-serialization of what we decoded."""
    first = '{"sg_event_id":"k1",  "event":"open", "timestamp":1763650000,"z":1,"a":"caf\\u00e9"}'
    second = '{\n  "event": "delivered", "sg_event_id": "k2", "email": "é@example.org"\n}'
    body = f"[ {first} ,\r\n{second}]".encode()
    response = client_for(own_settings).post(webhook.PATH, content=body,
                                              headers=signer.headers(body))
    assert response.status_code == 204
    with db.session() as session:
        kept = dict(session.execute(text(
            "SELECT provider_event_id, CAST(raw AS TEXT) FROM delivery_events")).all())
        rows = {r.provider_event_id: r.raw for r in session.scalars(select(DeliveryEventRow))}
    assert kept == {"k1": first, "k2": second}
    assert rows["k1"]["a"] == "caf\u00e9" and rows["k2"]["email"] == "\u00e9@example.org"


def test_signed_post_with_a_fresh_timestamp_is_stored(own_settings, signer, client_for, db):
    body = _events(3)
    response = client_for(own_settings).post(webhook.PATH, content=body,
                                              headers=signer.headers(body))
    assert response.status_code == 204
    assert _stored(db) == 3


def test_duplicate_post_changes_nothing(own_settings, signer, client_for, db):
    client = client_for(own_settings)
    body = _events(5)
    assert client.post(webhook.PATH, content=body, headers=signer.headers(body)).status_code == 204
    with db.session() as session:
        first = session.execute(select(DeliveryEventRow.id, DeliveryEventRow.provider_event_id,
                                       DeliveryEventRow.received_at)
                                .order_by(DeliveryEventRow.id)).all()
    again = client.post(webhook.PATH, content=body, headers=signer.headers(body))
    assert again.status_code == 204
    with db.session() as session:
        second = session.execute(select(DeliveryEventRow.id, DeliveryEventRow.provider_event_id,
                                        DeliveryEventRow.received_at)
                                 .order_by(DeliveryEventRow.id)).all()
    assert second == first


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_timestamp_in_the_far_future_is_refused(own_settings, signer, client_for, db):
    body = _events(1)
    future = str(int(time.time()) + 3600)
    response = client_for(own_settings).post(webhook.PATH, content=body,
                                              headers=signer.headers(body, future))
    assert response.status_code == 403
    assert _stored(db) == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_body_over_the_limit_is_refused_with_413(own_settings, signer, client_for, db):
    body = _events(2000)
    assert len(body) > own_settings.webhook_max_body
    client = client_for(own_settings)
    response = client.post(webhook.PATH, content=body, headers=signer.headers(body))
    assert response.status_code == 413

    def chunks():  # no Content-Length: the cap must hold while streaming
        for start in range(0, len(body), 8192):
            yield body[start:start + 8192]

    streamed = client.post(webhook.PATH, content=chunks(), headers=signer.headers(body))
    assert streamed.status_code == 413
    assert _stored(db) == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_read_capped_stops_reading_once_over_the_limit(own_settings):
    import asyncio

    consumed = []

    class FakeRequest:
        headers: dict = {}

        async def stream(self):
            for _ in range(1000):
                consumed.append(1)
                yield b"x" * 1024

    with pytest.raises(WebhookRefused) as refused:
        asyncio.run(webhook.read_capped(FakeRequest(), 10 * 1024))
    assert refused.value.status == 413
    assert len(consumed) == 11  # stopped at the first chunk past the cap, not at 1,000


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("body", [b"not json", b'{"event": "delivered"}', b"[1, 2]",
                                  b'[{"event": "open"}', "[\"caf\xe9\"]".encode("latin-1")])
def test_signed_but_invalid_body_is_refused_with_400(body, own_settings, signer, client_for, db):
    response = client_for(own_settings).post(webhook.PATH, content=body,
                                              headers=signer.headers(body))
    assert response.status_code == 400
    assert _stored(db) == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_storage_failure_answers_503_so_sendgrid_retries(
        own_settings, signer, client_for, db, monkeypatch):
    def broken(*_args, **_kwargs):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    from mailer.tracking import ingest

    monkeypatch.setattr(ingest, "ingest_events", broken)
    body = _events(2)
    response = client_for(own_settings).post(webhook.PATH, content=body,
                                              headers=signer.headers(body))
    assert response.status_code == 503
    assert _stored(db) == 0
    monkeypatch.undo()
    retried = client_for(own_settings).post(webhook.PATH, content=body,
                                             headers=signer.headers(body))
    assert retried.status_code == 204
    assert _stored(db) == 2


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_failing_batch_leaves_nothing_half_written(own_settings, signer, client_for, db,
                                                     monkeypatch):
    """The rows are inserted, then suppression fails: the whole batch must roll back."""
    def broken(*_args, **_kwargs):
        raise OperationalError("UPDATE", {}, Exception("disk I/O error"))

    monkeypatch.setattr(tracking_ingest, "apply_suppressions", broken)
    body = _events(4)
    response = client_for(own_settings).post(webhook.PATH, content=body,
                                              headers=signer.headers(body))
    assert response.status_code == 503
    assert _stored(db) == 0


def test_nul_and_lone_surrogates_are_stored_cleaned_not_refused_forever(
        own_settings, signer, client_for, db):
    """PostgreSQL refuses NUL and lone surrogates; a 5xx would make SendGrid retry in vain."""
    body = (b'[{"event": "delivered", "email": "x\\u0000@example.org", "sg_event_id": "z1",'
            b' "timestamp": 1763650000, "reason": "\\ud800"}]')
    response = client_for(own_settings).post(webhook.PATH, content=body,
                                              headers=signer.headers(body))
    assert response.status_code == 204
    with db.session() as session:
        row = session.scalar(select(DeliveryEventRow))
    assert (row.email, row.raw["reason"]) == ("x@example.org", "\ufffd")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_passing_conflict_is_retried_in_process(own_settings, signer, client_for, db,
                                                  monkeypatch):
    from mailer.tracking import ingest

    class Deadlock(Exception):
        sqlstate = "40P01"

    real, calls = ingest.ingest_events, []

    def deadlock_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            real(*args, **kwargs)  # the work is done, then the database gives up on it
            raise OperationalError("UPDATE", {}, Deadlock("deadlock detected"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest, "ingest_events", deadlock_once)
    body = _events(3)
    response = client_for(own_settings).post(webhook.PATH, content=body,
                                              headers=signer.headers(body))
    assert response.status_code == 204 and len(calls) == 2
    assert _stored(db) == 3


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_arbitrary_unsigned_input_is_refused_cleanly(own_settings, client_for, db):
    """Whatever a stranger posts, the answer is a 4xx and nothing is stored."""
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from hypothesis import strategies as st

    client = client_for(own_settings)
    header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=120)

    @hsettings(max_examples=30, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(body=st.binary(max_size=300), signature=st.none() | header_text,
           timestamp=st.none() | header_text | st.integers(0, 2**40).map(str))
    def check(body, signature, timestamp):
        response = _post(client, body, signature, timestamp)
        assert 400 <= response.status_code < 500, response.text

    check()
    assert _stored(db) == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("key", [
    f"-----BEGIN PUBLIC KEY-----\n{SG_PUBLIC_KEY[:64]}\n{SG_PUBLIC_KEY[64:]}\n"
    "-----END PUBLIC KEY-----\n",
    f"  {SG_PUBLIC_KEY}\n",
])
def test_the_key_may_be_pasted_as_pem_or_wrapped(sg_settings, key):
    settings = sg_settings.model_copy(update={"sendgrid_webhook_public_key": SecretStr(key)})
    assert verify(settings, SG_PAYLOAD.encode(), SG_SIGNATURE, SG_TIMESTAMP) == SG_PAYLOAD


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_key_that_is_not_a_key_answers_503(sg_settings):
    settings = sg_settings.model_copy(update={
        "sendgrid_webhook_public_key": SecretStr("not-a-key")})
    with pytest.raises(WebhookRefused) as refused:
        verify(settings, SG_PAYLOAD.encode(), SG_SIGNATURE, SG_TIMESTAMP)
    assert refused.value.status == 503


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_collection_is_paused_during_a_post_and_restored_even_when_storing_fails(
        own_settings, signer, client_for, db, monkeypatch):
    import gc

    from mailer.tracking import ingest

    seen = []
    real = ingest.ingest_events

    def spy(*args, **kwargs):
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    def broken(*_args, **_kwargs):
        seen.append(gc.isenabled())
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    client = client_for(own_settings)
    assert gc.isenabled()
    monkeypatch.setattr(ingest, "ingest_events", spy)
    body = _events(2)
    assert client.post(webhook.PATH, content=body, headers=signer.headers(body)).status_code == 204
    monkeypatch.setattr(ingest, "ingest_events", broken)
    body = _events(2, prefix="f")
    assert client.post(webhook.PATH, content=body, headers=signer.headers(body)).status_code == 503
    assert seen == [False, False]
    assert gc.isenabled()


def test_overlapping_pauses_restore_collection_only_when_the_last_ends():
    import gc

    first, second = webhook.gc_paused(), webhook.gc_paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_pause_never_turns_on_collection_someone_else_turned_off():
    import gc

    gc.disable()
    try:
        with webhook.gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_pause_kept_up_by_overlapping_posts_still_collects(monkeypatch):
    import gc

    collections = []

    def record(phase, info):
        if phase == "stop":
            collections.append(info["generation"])

    monkeypatch.setattr(webhook, "GC_MAX_PAUSE", 0.0)
    gc.callbacks.append(record)
    try:
        first, second = webhook.gc_paused(), webhook.gc_paused()
        first.__enter__()
        second.__enter__()
        time.sleep(0.01)
        first.__exit__(None, None, None)  # second still holds the pause
        assert collections == [2] and not gc.isenabled()
        second.__exit__(None, None, None)
    finally:
        gc.callbacks.remove(record)
    assert gc.isenabled()


@pytest.mark.parametrize(("body", "reason"), [
    ('[{"event": "open"}', "body is not valid JSON"),
    ("[1 2]", "body is not valid JSON"),
    ('[{"event": "open"}] trailing', "body is not valid JSON"),
    ("not json", "body is not valid JSON"),
    ('{"event": "open"}', "body must be a JSON array of event objects"),
    ('[{"event": "open"}, 7]', "body must be a JSON array of event objects"),
])
def test_an_unusable_body_is_refused_saying_why(body, reason):
    with pytest.raises(WebhookRefused) as refused:
        webhook.parse_events(body)
    assert (refused.value.status, refused.value.reason) == (400, reason)
