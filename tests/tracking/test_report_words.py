"""Reports mean what they say: with the outbox transport nothing reports deliveries, so the
report says "written" and shows no delivery rate, and status uses the same word."""

from __future__ import annotations

from mailer.delivery.engine import send_campaign
from tests.support.campaigns import add_subscribers, approved_campaign


def test_an_outbox_send_reads_written_with_no_invented_rates(db, settings, cli):
    add_subscribers(db, 5)
    campaign_id = approved_campaign(db)
    assert send_campaign(db, settings, campaign_id).accepted == 5
    report = cli("campaigns", "report", campaign_id, "--json").json()
    assert report["handed_off_as"] == "written" and report["provider_events"] is False
    assert report["rates"]["delivery"] is None and report["funnel"]["sent"] == 5
    human = cli("campaigns", "report", campaign_id).stdout
    assert "written 5" in human and "0.00%" not in human
    status = cli("campaigns", "status", campaign_id).stdout
    assert "written" in status and "accepted" not in status and "delivered" not in status
