"""Retrying a sent campaign's failed recipients is one action on every face: the dashboard
(asks first, approver only), the API (`POST /api/campaigns/{id}/retry`) and the CLI
(`mailer campaigns retry ID`)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailer.campaigns.models import Campaign
from mailer.delivery.engine import send_campaign
from mailer.delivery.records import Delivery
from mailer.transports.mock import MockTransport, refuse
from tests.support.campaigns import add_subscribers, approved_campaign
from tests.web.conftest import add_user, login
from tests.web.test_admin import act

REFUSED = {"person1@example.org": "refused (451): try later",
           "person2@example.org": "mailbox unavailable",
           "person3@example.org": "refused (550): no such user"}


@pytest.fixture
def sent(db, settings):
    add_user(db, "alice", "author")
    add_user(db, "bob", "approver")
    add_subscribers(db, 5)
    campaign_id = approved_campaign(db)
    send_campaign(db, settings.model_copy(update={"concurrency": 1}), campaign_id,
                  transport=MockTransport(refuse(REFUSED)))
    return campaign_id


def state(db, campaign_id: int) -> tuple[str, list[str]]:
    with db.session() as session:
        pending = session.scalars(select(Delivery.email).where(
            Delivery.campaign_id == campaign_id, Delivery.status == "pending")
            .order_by(Delivery.email))
        return session.get(Campaign, campaign_id).status, list(pending)


def token(cli, user: str) -> str:
    result = cli("tokens", "create", f"{user}-script", "--user", user)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def test_the_dashboard_asks_then_sends_again(client, db, sent):
    login(client, "bob")
    page = client.get(f"/admin/campaigns/{sent}")
    assert "Retry 2 failed…" in page.text
    asked = act(client, sent, "retry")
    assert "Send again to 2 people whose delivery failed?" in asked.text
    assert 'name="confirmed" value="yes"' in asked.text
    assert state(db, sent) == ("sent", [])  # nothing done before the answer
    done = act(client, sent, "retry", confirmed="yes")
    assert "Sending again to 2 people whose delivery failed." in done.text
    assert state(db, sent) == ("sending", ["person1@example.org", "person2@example.org"])
    assert "Retry" not in client.get(f"/admin/campaigns/{sent}").text


def test_an_author_may_not_retry(client, db, sent, cli):
    login(client, "alice")
    assert "Retry 2 failed" not in client.get(f"/admin/campaigns/{sent}").text
    response = act(client, sent, "retry", confirmed="yes")
    assert response.status_code == 403
    api = client.post(f"/api/campaigns/{sent}/retry",
                      headers={"Authorization": f"Bearer {token(cli, 'alice')}"})
    assert api.status_code == 403
    assert state(db, sent) == ("sent", [])


def test_the_api_retries_once(client, db, sent, cli):
    headers = {"Authorization": f"Bearer {token(cli, 'bob')}"}
    response = client.post(f"/api/campaigns/{sent}/retry", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["retried"] == 2 and response.json()["status"] == "sending"
    again = client.post(f"/api/campaigns/{sent}/retry", headers=headers)
    assert again.status_code == 409 and "only a sent campaign" in again.json()["detail"]


def test_the_cli_retries(db, sent, cli):
    result = cli("campaigns", "retry", str(sent), "--by", "bob", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["retried"] == 2 and result.json()["status"] == "sending"
    assert state(db, sent) == ("sending", ["person1@example.org", "person2@example.org"])
    again = cli("campaigns", "retry", str(sent))
    assert again.exit_code != 0 and "only a sent campaign" in again.stderr
