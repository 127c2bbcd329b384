"""The Event Webhook while PostgreSQL is unreachable (every connection cut by a real proxy):
a quick 503 with Retry-After, never a 500, and nothing lost: SendGrid posts the batch again,
and once the database is back the same post is stored."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from mailer.storage.db import Database, make_engine
from mailer.tracking import webhook
from mailer.tracking.models import DeliveryEventRow
from mailer.web.app import create_app
from tests.support.dbproxy import DbProxy


def _stored(db) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(DeliveryEventRow))


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_post_during_an_outage_answers_503_and_is_stored_when_posted_again(
        own_settings, signer, db):
    body = json.dumps([{"email": f"p{i}@example.org", "event": "delivered",
                        "sg_event_id": f"outage-{i}", "timestamp": 1763650000 + i}
                       for i in range(3)]).encode()
    with DbProxy() as proxy:
        proxied = Database(make_engine(proxy.url(own_settings.database_url)))
        client = TestClient(create_app(own_settings, proxied), raise_server_exceptions=False)
        try:
            proxy.cut()
            refused = client.post(webhook.PATH, content=body, headers=signer.headers(body))
            assert proxy.refused > 0  # it really tried the database
            proxy.restore()
            retried = client.post(webhook.PATH, content=body, headers=signer.headers(body))
        finally:
            proxied.dispose()
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == str(webhook.RETRY_AFTER)
    assert "retry later" in refused.json()["detail"]
    assert retried.status_code == 204
    assert _stored(db) == 3
