"""Structured JSON logs: one parseable line per event, never a secret."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import SecretStr

from mailer.tracking.logs import LOGGER_NAME, log_event


def _records(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == LOGGER_NAME]


def test_log_event_writes_one_json_line(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    log_event("handoff", campaign=7, delivery=None, attempt=2, outcome="accepted",
              batch="b-1", ids=[1, 2])
    (record,) = _records(caplog)
    assert record["kind"] == "handoff"
    assert (record["campaign"], record["attempt"], record["outcome"]) == (7, 2, "accepted")
    assert record["ids"] == [1, 2] and record["ts"].endswith("+00:00")


def test_secrets_never_reach_the_log(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    log_event("transport_call", api_key="SG.very-secret", password="hunter2",
              Authorization="Bearer abc", settings={"smtp_password": "pw", "host": "h"},
              key=SecretStr("s3cret"), signature="MEUCIG...", email="jane.doe@example.org",
              reason="550 jane.doe@example.org unknown")
    text = caplog.text
    for secret in ("SG.very-secret", "hunter2", "Bearer abc", "pw\"", "s3cret", "MEUCIG",
                   "jane.doe@"):
        assert secret not in text
    (record,) = _records(caplog)
    assert record["api_key"] == record["password"] == record["signature"] == "[redacted]"
    assert record["settings"] == {"smtp_password": "[redacted]", "host": "h"}
    assert record["email"] == "j***@example.org"
    assert record["reason"] == "550 j***@example.org unknown"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_every_stored_event_is_logged(caplog, db, settings):
    from mailer.tracking.ingest import ingest_events

    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    with db.session() as session:
        ingest_events(session, [{"event": "delivered", "sg_event_id": "a", "timestamp": 1},
                                {"event": "open", "sg_event_id": "b", "timestamp": 2}], settings)
        ingest_events(session, [{"event": "open", "sg_event_id": "b", "timestamp": 2}], settings)
    records = [r for r in _records(caplog) if r["kind"] == "provider_event"]
    assert [(r["event_id"], r["outcome"]) for r in records] == [("a", "delivered"),
                                                                ("b", "opened")]


def test_nothing_is_formatted_when_info_is_off(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER_NAME)

    class Explodes:
        def __str__(self):
            raise AssertionError("formatted while disabled")

    log_event("x", thing=Explodes())
    assert _records(caplog) == []
