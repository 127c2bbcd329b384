""""Send now" is one action on every face: the CLI (`campaigns schedule --now`), the dashboard
(Schedule → now) and the API (`{"now": true}`) all start the campaign at once — audience
drawn, status `sending`, never passing through `scheduled` — and a refusal is the same."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from mailer.campaigns.models import Campaign, CampaignLog
from mailer.delivery.records import Delivery
from subscribers.models import Subscriber
from tests.web.conftest import add_subscriber, add_user, login
from tests.web.test_admin import act, create_draft


def state(db, campaign_id: int) -> tuple[str, int, list[str]]:
    with db.session() as session:
        campaign = session.get(Campaign, campaign_id)
        drawn = session.scalar(select(func.count()).select_from(Delivery)
                               .where(Delivery.campaign_id == campaign_id))
        path = list(session.scalars(select(CampaignLog.to_status)
                                    .where(CampaignLog.campaign_id == campaign_id)
                                    .order_by(CampaignLog.id)))
        return campaign.status, drawn, path


@pytest.fixture
def approved(client, db, topics, release_id):
    add_user(db, "alice", "author")
    add_user(db, "bob", "approver")
    for n in range(3):
        add_subscriber(db, f"farmer{n}@example.org", topics=["agriculture"])
    login(client, "alice")
    campaign_id = create_draft(client, release_id)
    client.cookies.clear()
    login(client, "bob")
    assert "Approved." in act(client, campaign_id, "approve").text
    return campaign_id


def test_the_dashboard_asks_then_sends_now(client, db, approved):
    asked = act(client, approved, "schedule", when="now")
    assert "Send to 3 people now?" in asked.text
    assert 'name="when" value="now"' in asked.text and 'name="confirmed" value="yes"' in asked.text
    assert state(db, approved) == ("approved", 0, ["draft", "approved"])  # nothing sent yet
    response = act(client, approved, "schedule", when="now", confirmed="yes")
    assert "Sending has started." in response.text
    assert state(db, approved) == ("sending", 3, ["draft", "approved", "sending"])


def test_the_api_sends_now(client, db, approved, cli):
    result = cli("tokens", "create", "bob-script", "--user", "bob")
    assert result.exit_code == 0, result.stderr
    token = result.stdout.strip()
    response = client.post(f"/api/campaigns/{approved}/schedule", json={"now": True},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "sending"
    assert state(db, approved) == ("sending", 3, ["draft", "approved", "sending"])


def test_the_cli_sends_now(db, approved, cli):
    result = cli("campaigns", "schedule", str(approved), "--now", "--by", "bob", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["status"] == "sending"
    assert state(db, approved) == ("sending", 3, ["draft", "approved", "sending"])


def test_a_refused_send_now_changes_nothing(client, db, approved, settings):
    """In the election blackout "send now" is refused with the reason, as on the CLI."""
    election = date.today() + timedelta(days=10)
    client.app.state.settings = settings.model_copy(update={"election_dates": [election]})
    response = act(client, approved, "schedule", when="now", confirmed="yes")
    assert "notice-error" in response.text and "blackout" in response.text
    assert state(db, approved) == ("approved", 0, ["draft", "approved"])


def test_dashboard_and_api_show_who_is_reached(client, db, approved, cli):
    digest_reader = add_subscriber(db, "daily@example.org", topics=["agriculture"])
    with db.session() as session:
        session.get(Subscriber, digest_reader).frequency = "daily"
    page = client.get(f"/admin/campaigns/{approved}").text
    assert re.search(r'data-field="audience">3</span> get this release now; '
                     r'<span data-field="in-digests">1</span> more', page), page
    result = cli("tokens", "create", "bob-reader", "--user", "bob")
    shown = client.get(f"/api/campaigns/{approved}",
                       headers={"Authorization": f"Bearer {result.stdout.strip()}"}).json()
    assert shown["audience"] == {"now": 3, "in_digests": 1}


def test_status_reads_the_same_on_the_api_and_the_cli(client, db, approved, cli):
    result = cli("tokens", "create", "bob-status", "--user", "bob")
    api = client.get(f"/api/campaigns/{approved}/status",
                     headers={"Authorization": f"Bearer {result.stdout.strip()}"}).json()
    shown = cli("campaigns", "status", approved, "--json").json()
    assert api == shown
    assert api["handed_off_as"] == "written" and api["provider_events"] is False
    assert api["in_doubt_policy"]["evidence"] == "the outbox file"
