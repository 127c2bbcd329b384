"""A big campaign's report is shown from its snapshot, refreshed after the page is
answered when it is older than its freshness window; a small one is counted on each view."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as S
from mailer.delivery.records import Delivery
from mailer.storage.base import utcnow
from mailer.tracking import snapshots
from mailer.tracking.models import ReportSnapshot
from tests.campaigns.factory import add_campaign
from tests.web.conftest import add_user, login


def sent(db, delivered: int, sending: bool = False) -> int:
    with db.session() as session:
        campaign = add_campaign(session, status=S.SENDING if sending else S.SENT)
        for i in range(delivered):
            session.add(Delivery(campaign_id=campaign.id, email=f"r{i}@example.org",
                                 status="delivered", delivered_at=utcnow()))
        campaign.recipients = delivered
        return campaign.id


def deliver_more(db, campaign_id: int, n: int) -> None:
    with db.session() as session:
        for i in range(n):
            session.add(Delivery(campaign_id=campaign_id, email=f"late{i}@example.org",
                                 status="delivered", delivered_at=utcnow()))


def shown_delivered(client, campaign_id: int) -> str | None:
    page = client.get(f"/admin/campaigns/{campaign_id}/report")
    assert page.status_code == 200
    if "Counting this campaign" in page.text:
        assert page.headers["Refresh"] == "3"
        return None
    return page.text.split("<dt>delivered</dt><dd>", 1)[1].split("<", 1)[0]


@pytest.fixture
def staff(client, db):
    add_user(db, "alice", "author")
    login(client, "alice")


def test_a_small_campaign_is_counted_on_every_view(client, db, staff):
    campaign_id = sent(db, 3)
    assert shown_delivered(client, campaign_id) == "3"
    deliver_more(db, campaign_id, 2)
    assert shown_delivered(client, campaign_id) == "5"
    with db.session() as session:
        assert session.get(ReportSnapshot, campaign_id) is None


def test_a_big_campaign_shows_its_snapshot_and_refreshes_it_when_stale(
        client, db, staff, monkeypatch):
    monkeypatch.setattr(snapshots, "LIVE_LIMIT", 2)
    campaign_id = sent(db, 3, sending=True)
    # First view: nothing counted yet; the refresh runs once the page is answered.
    assert shown_delivered(client, campaign_id) is None
    assert shown_delivered(client, campaign_id) == "3"
    deliver_more(db, campaign_id, 2)
    assert shown_delivered(client, campaign_id) == "3"  # fresh for a minute while sending
    with db.session() as session:
        session.get(ReportSnapshot, campaign_id).computed_at -= timedelta(seconds=61)
    assert shown_delivered(client, campaign_id) == "3"  # the stale one, refreshed after
    assert shown_delivered(client, campaign_id) == "5"
    frame = client.get(f"/admin/campaigns/{campaign_id}/report.html")
    assert frame.status_code == 200 and "<svg" in frame.text


def test_one_refresher_at_a_time_and_a_dead_one_is_taken_over(db):
    campaign_id = sent(db, 1)
    with db.session() as session:
        assert snapshots.claim(session, campaign_id)
    with db.session() as session:
        assert not snapshots.claim(session, campaign_id)  # under way elsewhere
    later = utcnow() + snapshots.CLAIM_TIMEOUT + timedelta(seconds=1)
    with db.session() as session:
        assert snapshots.claim(session, campaign_id, now=later)  # that one died


def test_freshness_windows():
    recent = Campaign(status=S.SENT, finished_at=utcnow() - timedelta(hours=1))
    old = Campaign(status=S.SENT, finished_at=utcnow() - timedelta(days=3))
    assert snapshots.fresh_for(recent) == timedelta(seconds=60)
    assert snapshots.fresh_for(old) == timedelta(minutes=15)
    assert snapshots.fresh_for(Campaign(status=S.SENDING)) == timedelta(seconds=60)
