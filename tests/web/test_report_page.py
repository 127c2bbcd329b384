"""The report page's counts read as the office should: with the outbox (no provider events)
"accepted" is named "written" and the counts only provider events could raise say "not
reported" instead of a 0 that reads as nothing delivered; with events they are numbers."""

from __future__ import annotations

import re

from mailer.campaigns.models import CampaignStatus as S
from mailer.delivery.records import Delivery
from mailer.storage.base import utcnow
from mailer.tracking.models import DeliveryEventRow
from tests.campaigns.factory import add_campaign
from tests.web.conftest import add_user, login


def _written(db, people: int) -> int:
    with db.session() as session:
        campaign = add_campaign(session, status=S.SENT)
        for i in range(people):
            session.add(Delivery(campaign_id=campaign.id, email=f"r{i}@example.org",
                                 status="accepted"))
        campaign.recipients = people
        return campaign.id


def _counts(client, campaign_id: int) -> dict[str, str]:
    page = client.get(f"/admin/campaigns/{campaign_id}/report")
    assert page.status_code == 200
    return dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", page.text))


def test_outbox_counts_say_written_and_not_reported(client, db):
    add_user(db, "alice", "author")
    login(client, "alice")
    counts = _counts(client, _written(db, 4))
    assert counts["recipients"] == "4" and counts["written"] == "4"
    assert "accepted" not in counts
    assert counts["delivered"] == counts["opened"] == counts["bounced"] == "not reported"
    assert counts["failed"] == "0"  # the sender's own counts stay numbers


def test_with_provider_events_the_zeros_are_numbers(client, db):
    add_user(db, "alice", "author")
    login(client, "alice")
    campaign_id = _written(db, 2)
    with db.session() as session:
        session.add(DeliveryEventRow(provider_event_id="ev-1", campaign_id=campaign_id,
                                     email="r0@example.org", type="processed",
                                     occurred_at=utcnow(), raw={}))
    counts = _counts(client, campaign_id)
    assert counts["delivered"] == "0" and counts["opened"] == "0"
