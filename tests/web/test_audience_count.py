"""One audience count everywhere: how many get a release as it goes out and how many in
their daily or weekly digest (``mailer.delivery.audience.audience_count``), on the segment
pages, the live builder count, the campaign page and ``mailer segments count``."""

from __future__ import annotations

import pytest

from mailer.delivery.audience import audience_count, campaign_audience, count_audience
from subscribers.models import Segment
from tests.campaigns.factory import add_campaign, add_subscriber
from tests.web.conftest import add_user, login


@pytest.fixture
def mixed(db) -> int:
    """Cass County: three take each release, one daily, one weekly, one pending daily, one
    unsubscribed weekly; and one immediate farm follower elsewhere."""
    with db.session() as session:
        for i in range(3):
            add_subscriber(session, f"now{i}@example.org", county="Cass",
                           topics=["agriculture"])
        add_subscriber(session, "daily@example.org", county="Cass", frequency="daily",
                       topics=["agriculture"])
        add_subscriber(session, "weekly@example.org", county="Cass", frequency="weekly")
        add_subscriber(session, "pending@example.org", county="Cass", frequency="daily",
                       status="pending", topics=["agriculture"])
        add_subscriber(session, "gone@example.org", county="Cass", frequency="weekly",
                       status="unsubscribed")
        add_subscriber(session, "ward@example.org", county="Ward", topics=["agriculture"])
        segment = Segment(name="Cass", query='county = "Cass"')
        session.add(segment)
        session.flush()
        return segment.id


@pytest.mark.parametrize("query, expected", [
    ('county = "Cass"', {"count": 5, "now": 3, "in_digests": 2}),
    # The topic-first plan (a required topic) gives the same split.
    ('topic = "agriculture" and county = "Cass"', {"count": 4, "now": 3, "in_digests": 1}),
    ('topic = "agriculture"', {"count": 5, "now": 4, "in_digests": 1}),
    ('topic = "no-such-topic"', {"count": 0, "now": 0, "in_digests": 0}),
])
def test_the_split_counts_exactly_who_a_release_campaign_draws(db, mixed, query, expected):
    with db.session() as session:
        assert audience_count(session, query=query) == expected
        campaign = add_campaign(session, query=query)
        drawn = len(session.execute(campaign_audience(session, campaign)).all())
        assert count_audience(session, campaign) == {"now": drawn,
                                                     "in_digests": expected["in_digests"]}
        assert drawn == expected["now"]


def test_segment_pages_and_the_live_count_show_the_split(client, db, mixed):
    add_user(db, "alice", "author")
    login(client, "alice")
    page = client.get(f"/admin/segments/{mixed}").text
    assert '<span class="count-live" data-field="count">5</span>' in page
    assert '<span data-field="now">3</span> get each release as it goes out' in page
    assert '<span data-field="in-digests">2</span> in their daily or weekly digest' in page
    live = client.get("/admin/segments/count", params={"segment": "Cass"}).json()
    assert live == {"count": 5, "now": 3, "in_digests": 2}
    assert client.get("/admin/segments/count",
                      params={"query": 'county = "Ward"'}).json()["now"] == 1


def test_the_cli_count_gives_the_same_split(cli, db, mixed):
    counted = cli("segments", "count", "Cass", "--json")
    assert counted.json() == {"count": 5, "now": 3, "in_digests": 2}
    plain = cli("segments", "count", "Cass")
    assert plain.stdout.strip() == ("5 (3 get each release as it goes out, 2 in their daily "
                                    "or weekly digest)")
    every = cli("segments", "count", "Cass", "--all", "--json")
    assert every.json() == {"count": 7}  # every match, whatever the status
