"""The Event Webhook onto a full disk (SQLite on a real small tmpfs, filled): a 503 with
Retry-After, never a 500, and nothing lost: once there is space the same post is stored."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from mailer.tracking import webhook
from mailer.web.app import create_app
from tests.support.small_disk import database_url, disk
from tests.tracking.test_webhook_outage import _stored

__all__ = ["database_url", "disk"]  # fixtures, imported so they apply here


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_post_onto_a_full_disk_answers_503_and_is_stored_when_posted_again(
        own_settings, signer, db, disk):
    body = json.dumps([{"email": f"p{i}@example.org", "event": "delivered",
                        "sg_event_id": f"full-{i}", "timestamp": 1763650000 + i}
                       for i in range(3)]).encode()
    client = TestClient(create_app(own_settings, db), raise_server_exceptions=False)
    disk.fill()
    refused = client.post(webhook.PATH, content=body, headers=signer.headers(body))
    disk.free()
    retried = client.post(webhook.PATH, content=body, headers=signer.headers(body))
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == str(webhook.RETRY_AFTER)
    assert retried.status_code == 204
    assert _stored(db) == 3
