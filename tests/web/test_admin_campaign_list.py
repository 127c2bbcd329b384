"""The campaigns list shows each campaign's delivery numbers with their rates, as the report
counts them, and says so plainly where no provider events come back."""

from __future__ import annotations

import re

from mailer.campaigns.models import CampaignStatus as S
from mailer.delivery.records import Delivery
from mailer.storage.base import utcnow
from tests.campaigns.factory import add_campaign
from tests.web.conftest import add_user, login


def sent_campaign(db) -> int:
    """Ten recipients: 8 arrived (4 opened, 1 clicked, 1 complained), 1 bounced, 1 failed."""
    now = utcnow()
    with db.session() as session:
        campaign = add_campaign(session, status=S.SENT)
        for i in range(10):
            status = "delivered" if i < 8 else ("bounced" if i == 8 else "failed")
            session.add(Delivery(
                campaign_id=campaign.id, email=f"r{i}@example.org", status=status,
                delivered_at=now if i < 8 else None, opened_at=now if i < 4 else None,
                clicked_at=now if i == 0 else None, complained_at=now if i == 1 else None,
                bounced_at=now if i == 8 else None))
        campaign.recipients = 10
        return campaign.id


def cells(html: str, campaign_id: int) -> list[str]:
    row = re.search(rf'<tr data-campaign-id="{campaign_id}".*?</tr>', html, re.S).group(0)
    return [re.sub(r"<[^>]+>", " ", c).split() for c in re.findall(r"<td[^>]*>(.*?)</td>", row,
                                                                    re.S)]


def test_numbers_and_rates_with_provider_events(client, app, db, settings):
    app.state.settings = settings.model_copy(update={"transport": "sendgrid"})
    campaign_id = sent_campaign(db)
    add_user(db, "alice", "author")
    login(client, "alice")
    page = client.get("/admin/campaigns")
    assert page.status_code == 200
    row = cells(page.text, campaign_id)
    # recipients, delivered (of 9 handed off), opens, clicks, complaints (of 8 arrived),
    # bounces (of 9 handed off)
    assert row[4:10] == [["10"], ["8", "88.9%"], ["4", "50.0%"], ["1", "12.5%"],
                         ["1", "11.1%"], ["1", "12.5%"]]


def test_without_provider_events_the_list_says_written_not_zero(client, db):
    campaign_id = sent_campaign(db)  # the test settings use the outbox
    add_user(db, "alice", "author")
    login(client, "alice")
    row = cells(client.get("/admin/campaigns").text, campaign_id)
    assert row[4] == ["10", "9", "written"]
    assert row[5:10] == [["–"]] * 5


def test_the_list_pages_by_25(client, db):
    with db.session() as session:
        ids = [add_campaign(session).id for _ in range(27)]
    add_user(db, "alice", "author")
    login(client, "alice")
    first = client.get("/admin/campaigns").text
    assert f'data-campaign-id="{ids[-1]}"' in first and f'data-campaign-id="{ids[1]}"' not in first
    second = client.get("/admin/campaigns", params={"page": 2}).text
    assert re.findall(r'data-campaign-id="(\d+)"', second) == [str(ids[1]), str(ids[0])]


def test_a_big_campaign_takes_its_numbers_from_its_report_snapshot(client, db, monkeypatch):
    from mailer.tracking import snapshots

    monkeypatch.setattr(snapshots, "LIVE_LIMIT", 5)
    campaign_id = sent_campaign(db)  # 10 recipients: "big" here
    add_user(db, "alice", "author")
    login(client, "alice")
    first = cells(client.get("/admin/campaigns").text, campaign_id)
    assert first[4] == ["Counting;", "shown", "in", "a", "moment."]
    row = cells(client.get("/admin/campaigns").text, campaign_id)  # refreshed after the first
    assert row[4] == ["10", "9", "written"] and row[9][-4:-2] == ["as", "of"]
