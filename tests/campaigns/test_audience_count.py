"""The audience a campaign shows (CLI, dashboard, API) is who its send reaches: people who
take releases in a daily or weekly digest are counted apart, as such."""

from __future__ import annotations

import re

from sqlalchemy import func, select, update

from mailer.campaigns.models import Campaign
from mailer.delivery.audience import draw_audience
from mailer.delivery.engine import start_campaign
from mailer.delivery.records import Delivery
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


def test_drawing_again_adds_only_who_joined_since_each_once(db):
    # The first draw leaves out the "not drawn yet" guard; a later one must keep it.
    add_subscribers(db, 3)
    campaign_id = approved_campaign(db)
    with db.session() as session:
        assert draw_audience(session, session.get(Campaign, campaign_id)) == 3
    add_subscribers(db, 2, start=3)
    with db.session() as session:
        assert draw_audience(session, session.get(Campaign, campaign_id)) == 5
        per_person = session.execute(
            select(Delivery.subscriber_id, func.count()).group_by(Delivery.subscriber_id)).all()
    assert len(per_person) == 5 and {n for _, n in per_person} == {1}
