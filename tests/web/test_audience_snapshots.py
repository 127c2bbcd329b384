"""On a big list the campaign, segment and schedule pages and the API show an audience's
stored count with the time it was made, and recount it after answering once it is older than
a minute; on a small list every view counts afresh (``mailer.delivery.reach``)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from mailer.campaigns.models import Campaign
from mailer.delivery import reach
from mailer.storage.base import utcnow
from subscribers.models import AudienceSnapshot, Segment
from tests.web.conftest import add_subscriber, add_user, csrf_from, login

QUERY = 'topic = "agriculture"'


@pytest.fixture
def staff(client, db, topics):
    add_user(db, "alice", "approver")
    login(client, "alice")


@pytest.fixture
def big_list(app, settings):
    """Every list counts as big: pages show stored counts."""
    app.state.settings = settings.model_copy(update={"audience_live_limit": 0})
    return app.state.settings


def people(db, *emails: str) -> None:
    for email in emails:
        add_subscriber(db, email, topics=["agriculture"])


def draft(db, release_id: int, **fields) -> int:
    with db.session() as session:
        campaign = Campaign(release_id=release_id, subject="Draft", created_by="alice",
                            **({"query": QUERY} | fields))
        session.add(campaign)
        session.flush()
        return campaign.id


def age(db, seconds: float = 61) -> None:
    with db.session() as session:
        for snapshot in session.scalars(select(AudienceSnapshot)):
            snapshot.computed_at -= timedelta(seconds=seconds)


def campaign_reach(client, campaign_id: int) -> tuple[str, str | None]:
    page = client.get(f"/admin/campaigns/{campaign_id}")
    assert page.status_code == 200
    shown = re.search(r'data-field="audience">([^<]+)<', page.text).group(1)
    at = re.search(r'data-field="counted-at">\(as counted ([^)]+)\)', page.text)
    return shown, at and at.group(1)


def test_a_small_list_is_counted_on_every_view_and_stores_nothing(
        client, db, staff, release_id):
    people(db, "a@example.org")
    campaign_id = draft(db, release_id)
    assert campaign_reach(client, campaign_id) == ("1", None)
    people(db, "b@example.org")
    assert campaign_reach(client, campaign_id) == ("2", None)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(AudienceSnapshot)) == 0


def test_a_big_list_shows_the_stored_count_and_recounts_it_when_stale(
        client, db, staff, big_list, release_id):
    people(db, "a@example.org", "b@example.org")
    campaign_id = draft(db, release_id)
    assert campaign_reach(client, campaign_id) == ("2", None)  # counted, and stored
    people(db, "c@example.org")
    shown, at = campaign_reach(client, campaign_id)
    assert shown == "2" and at.endswith(("CST", "CDT"))  # fresh for a minute: the stored one
    age(db)
    assert campaign_reach(client, campaign_id)[0] == "2"  # the stale one, recounted after
    assert campaign_reach(client, campaign_id)[0] == "3"
    with db.session() as session:
        snapshot = session.get(AudienceSnapshot, reach.query_key(QUERY))
        assert (snapshot.total, snapshot.now, snapshot.refreshing_since) == (3, 3, None)


def test_the_segment_page_and_the_schedule_show_the_stored_count(
        client, db, staff, big_list, release_id):
    people(db, "a@example.org")
    with db.session() as session:
        session.add(Segment(name="Farmers", query=QUERY))
        session.flush()
        segment_id = session.scalar(select(Segment.id))
    draft(db, release_id, query=None, segment_id=segment_id, status="scheduled",
          approved_by="bob", approved_at=utcnow(), scheduled_at=utcnow() + timedelta(days=1))
    assert 'data-field="count">1<' in client.get(f"/admin/segments/{segment_id}").text
    people(db, "b@example.org")
    page = client.get(f"/admin/segments/{segment_id}").text
    assert 'data-field="count">1<' in page and 'data-field="counted-at"' in page
    schedule = client.get("/admin/schedule").text
    assert "1 person" in schedule and 'data-field="counted-at"' in schedule
    age(db)
    client.get("/admin/schedule")
    assert "2 people" in client.get("/admin/schedule").text
    assert 'data-field="count">2<' in client.get(f"/admin/segments/{segment_id}").text


def test_the_api_gives_the_time_of_a_stored_count_and_keeps_its_own_field(
        client, db, cli, staff, big_list, release_id):
    token = cli("tokens", "create", "script", "--user", "alice").stdout.strip()
    people(db, "a@example.org")
    campaign_id = draft(db, release_id)

    def audience() -> dict:
        answer = client.get(f"/api/campaigns/{campaign_id}",
                            headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        return answer.json()["audience"]

    assert audience() == {"now": 1, "in_digests": 0}
    people(db, "b@example.org")
    stored = audience()
    assert set(stored) == {"now", "in_digests", "counted_at"} and stored["now"] == 1
    assert stored["counted_at"].endswith(("Z", "+00:00"))
    age(db)
    assert audience()["now"] == 1
    assert audience()["now"] == 2


def test_the_cli_and_the_send_confirmation_count_afresh(
        client, db, cli, staff, big_list, release_id):
    people(db, "a@example.org")
    campaign_id = draft(db, release_id)
    campaign_reach(client, campaign_id)  # stores 1
    people(db, "b@example.org")
    assert cli("campaigns", "show", str(campaign_id), "--json").json()["audience"] == {
        "now": 2, "in_digests": 0}
    with db.session() as session:
        session.get(Campaign, campaign_id).status = "approved"
    token = csrf_from(client.get(f"/admin/campaigns/{campaign_id}").text)
    asked = client.post(f"/admin/campaigns/{campaign_id}/schedule",
                        data={"csrf_token": token, "when": "now"})
    assert asked.status_code == 200 and "2 people" in asked.text


def test_one_recounter_at_a_time_and_a_dead_one_is_taken_over(db, settings, topics):
    people(db, "a@example.org")
    with db.session() as session:
        reach.query_reach(session, settings.model_copy(update={"audience_live_limit": 0}),
                          query=QUERY)
    with db.session() as session:
        assert reach.claim(session, QUERY)
        assert not reach.claim(session, QUERY)
        assert reach.claim(session, QUERY, now=utcnow() + reach.CLAIM_TIMEOUT
                           + timedelta(seconds=1))
    assert not reach.recount(db, QUERY)  # under way elsewhere: left to that process
    with db.session() as session:
        assert not reach.claim(session, 'topic = "never counted"')


def test_a_failed_recount_leaves_the_old_count_and_does_not_raise(db, settings, caplog):
    with db.session() as session:
        session.add(AudienceSnapshot(query_key=reach.query_key("topic ="), query="topic =",
                                     total=7, now=7, computed_at=utcnow()))
    assert not reach.recount(db, "topic =")
    with db.session() as session:
        assert session.get(AudienceSnapshot, reach.query_key("topic =")).total == 7
    assert "refreshing the audience of 'topic =' failed" in caplog.text
