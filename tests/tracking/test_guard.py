"""The reputation guard: warn at 0.1% complaints, pause every sending campaign at 0.3%."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from mailer.campaigns.models import Campaign, CampaignLog
from mailer.delivery.records import Delivery
from mailer.tracking.guard import complaint_rate
from mailer.tracking.ingest import ingest_events
from subscribers.models import Subscriber
from tests.tracking.factory import T0, make_campaign


def _campaign_with_deliveries(db, n: int, *, status="sending") -> tuple[int, list[dict]]:
    """A campaign with ``n`` delivered rows (bulk inserted: 1,000 ORM objects would be slow)."""
    with db.session() as session:
        campaign = make_campaign(session, status=status)
        start = session.scalar(select(Subscriber.id).order_by(Subscriber.id.desc())) or 0
        session.execute(insert(Subscriber), [
            {"email": f"c{campaign.id}-{i}@example.org", "status": "active"} for i in range(n)])
        ids = session.scalars(select(Subscriber.id).where(Subscriber.id > start)
                              .order_by(Subscriber.id)).all()
        session.execute(insert(Delivery), [
            {"campaign_id": campaign.id, "subscriber_id": sid, "email": f"c{campaign.id}-{i}"
             "@example.org", "status": "delivered", "sent_at": T0, "delivered_at": T0,
             "provider_message_id": "M"} for i, sid in enumerate(ids)])
        rows = session.execute(select(Delivery.id, Delivery.email)
                               .where(Delivery.campaign_id == campaign.id)
                               .order_by(Delivery.id)).all()
    return campaign.id, [{"id": r.id, "email": r.email} for r in rows]


def _complaints(campaign_id: int, rows: list[dict], count: int) -> list[dict]:
    return [{"event": "spamreport", "email": row["email"], "delivery_id": str(row["id"]),
             "campaign_id": str(campaign_id), "sg_event_id": f"spam-{row['id']}",
             "timestamp": int(T0.timestamp()) + 60} for row in rows[:count]]


def _status(db, campaign_id) -> tuple[str, str | None]:
    with db.session() as session:
        campaign = session.get(Campaign, campaign_id)
        return campaign.status, campaign.status_reason


def test_one_complaint_per_thousand_warns_without_pausing(db, settings):
    campaign_id, rows = _campaign_with_deliveries(db, 1000)
    with db.session() as session:
        summary = ingest_events(session, _complaints(campaign_id, rows, 1), settings)
    status, reason = _status(db, campaign_id)
    assert status == "sending"
    assert reason.startswith("complaint rate 0.10%") and "1 of 1000" in reason
    assert summary.paused_campaigns == [] and len(summary.warnings) == 1


def test_three_per_thousand_pauses_every_sending_campaign(db, settings):
    campaign_id, rows = _campaign_with_deliveries(db, 1000)
    with db.session() as session:
        other = make_campaign(session, status="sending").id
        finished = make_campaign(session, status="sent").id
    with db.session() as session:
        ingest_events(session, _complaints(campaign_id, rows, 2), settings)
    assert _status(db, campaign_id)[0] == "sending"
    with db.session() as session:
        summary = ingest_events(session, _complaints(campaign_id, rows, 3), settings)
    assert sorted(summary.paused_campaigns) == sorted([campaign_id, other])
    for paused in (campaign_id, other):
        status, reason = _status(db, paused)
        assert status == "paused"
        assert "reputation-guard" in reason and "0.30%" in reason
    assert _status(db, finished)[0] == "sent"
    with db.session() as session:
        log = session.scalars(select(CampaignLog).where(CampaignLog.campaign_id == other,
                                                        CampaignLog.to_status == "paused")).one()
    assert log.by == "reputation-guard"


def test_rate_below_the_warning_level_changes_nothing(db, settings):
    campaign_id, rows = _campaign_with_deliveries(db, 1100)
    with db.session() as session:
        summary = ingest_events(session, _complaints(campaign_id, rows, 1), settings)
    assert summary.warnings == []
    assert _status(db, campaign_id) == ("sending", None)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_complaint_rate_counts_a_complaint_as_arrival(db, settings):
    campaign_id, rows = _campaign_with_deliveries(db, 2)
    with db.session() as session:
        session.execute(Delivery.__table__.update().values(status="accepted",
                                                           delivered_at=None))
        assert complaint_rate(session, campaign_id) == (0, 0, 0.0)
    with db.session() as session:
        ingest_events(session, _complaints(campaign_id, rows, 1), settings)
        complaints, delivered, rate = complaint_rate(session, campaign_id)
    assert (complaints, delivered) == (1, 1)
