"""The audience a campaign shows (CLI, dashboard, API) is who its send reaches: people who
take releases in a daily or weekly digest are counted apart, as such."""

from __future__ import annotations

import re

from sqlalchemy import update

from mailer.delivery.engine import start_campaign
from subscribers.models import Subscriber
from tests.support.campaigns import add_subscribers, approved_campaign


def test_the_audience_count_equals_the_recipients_its_send_draws(db, settings, cli):
    add_subscribers(db, 10)
    with db.session() as session:  # four of them take a digest instead
        session.execute(update(Subscriber).where(Subscriber.id <= 3)
                        .values(frequency="daily"))
        session.execute(update(Subscriber).where(Subscriber.id == 4)
                        .values(frequency="weekly"))
    campaign_id = approved_campaign(db)
    shown = cli("campaigns", "show", campaign_id, "--json").json()
    assert shown["audience"] == {"now": 6, "in_digests": 4}
    human = cli("campaigns", "show", campaign_id).stdout
    assert re.search(r"audience: 6 get this release now; 4 more get it in their daily or "
                     r"weekly digest", human), human
    assert start_campaign(db, settings, campaign_id) == 6 == shown["audience"]["now"]
    after = cli("campaigns", "show", campaign_id, "--json").json()
    assert after["audience"] is None and after["recipients"] == 6
