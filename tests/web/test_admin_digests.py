"""Digests in the dashboard: the list, enable/disable, and run now (asked first, naming how
many people it may reach), with the functions ``mailer digests …`` uses."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from mailer.campaigns.models import Campaign
from mailer.delivery.records import Delivery
from mailer.scheduling.models import Digest
from mailer.storage.base import utcnow
from tests.campaigns.factory import add_release, add_subscriber
from tests.web.conftest import add_user, csrf_from, login


@pytest.fixture
def daily(db) -> int:
    """A daily digest with two long-standing daily readers and one new farm release."""
    with db.session() as session:
        digest = Digest(name="Morning digest", frequency="daily", at="07:00",
                        last_run_at=utcnow() - timedelta(days=1))
        session.add(digest)
        for address in ("one@example.org", "two@example.org"):
            person = add_subscriber(session, address, topics=["agriculture"],
                                    frequency="daily")
            person.created_at = utcnow() - timedelta(days=90)
        add_subscriber(session, "now@example.org", topics=["agriculture"])  # immediate
        add_release(session, title="Farm bill passes", topics=["agriculture"],
                    created_at=utcnow() - timedelta(hours=2))
        session.flush()
        return digest.id


def post(client, path: str, **data):
    token = csrf_from(client.get("/admin/digests").text)
    return client.post(path, data={"csrf_token": token, **data}, follow_redirects=False)


def test_the_list_shows_each_digest_in_office_time(client, db, daily):
    add_user(db, "alice", "author")
    login(client, "alice")
    page = client.get("/admin/digests")
    assert page.status_code == 200
    assert "Morning digest" in page.text and "daily, 07:00" in page.text
    # The next run, in the office's zone (CST/CDT), in the product's one format.
    assert re.search(r"\d{4}-\d\d-\d\d 07:00 C[SD]T", page.text)
    assert "Run now" not in page.text  # an author has neither control
    for move in ("run", "disable", "enable"):
        assert post(client, f"/admin/digests/{daily}/{move}").status_code == 403, move
    with db.session() as session:
        assert session.get(Digest, daily).active is True


def test_an_approver_disables_and_enables_a_digest(client, db, daily):
    add_user(db, "bob", "approver")
    login(client, "bob")
    assert post(client, f"/admin/digests/{daily}/disable").status_code == 303
    page = client.get("/admin/digests").text
    assert "Morning digest disabled" in page and "not while disabled" in page
    with db.session() as session:
        assert session.get(Digest, daily).active is False
    assert post(client, f"/admin/digests/{daily}/enable").status_code == 303
    with db.session() as session:
        assert session.get(Digest, daily).active is True
    assert post(client, "/admin/digests/999/enable").status_code == 404


def test_run_now_asks_naming_the_people_then_sends(client, db, daily):
    add_user(db, "bob", "approver")
    login(client, "bob")
    asked = post(client, f"/admin/digests/{daily}/run")
    assert asked.status_code == 200
    assert "Send Morning digest now to up to 2 people?" in asked.text
    assert "1 release(s) were published since its last run" in asked.text
    with db.session() as session:
        assert session.scalar(select(Campaign.id)) is None  # nothing yet

    done = post(client, f"/admin/digests/{daily}/run", confirmed="yes")
    assert done.status_code == 303
    page = client.get("/admin/digests").text
    assert "Digest started: 1 release(s) to 2 people" in page
    with db.session() as session:
        campaign = session.scalar(select(Campaign))
        assert campaign.kind == "digest" and campaign.digest_id == daily
        emails = set(session.scalars(select(Delivery.email)))
    assert emails == {"one@example.org", "two@example.org"}

    again = post(client, f"/admin/digests/{daily}/run", confirmed="yes")
    assert again.status_code == 303
    assert "Nothing new for anyone" in client.get("/admin/digests").text


def test_a_refused_run_says_why_and_sends_nothing(client, app, db, daily):
    add_user(db, "bob", "approver")
    login(client, "bob")
    # Quiet hours from this minute to two minutes on: the run falls inside them.
    now = utcnow().astimezone(app.state.settings.zone)
    begins, ends = now.strftime("%H:%M"), (now + timedelta(minutes=2)).strftime("%H:%M")
    app.state.settings = app.state.settings.model_copy(
        update={"quiet_hours": f"{begins}-{ends}"})
    done = post(client, f"/admin/digests/{daily}/run", confirmed="yes")
    assert done.status_code == 303
    assert "quiet hours" in client.get("/admin/digests").text
    with db.session() as session:
        assert session.scalar(select(Campaign.id)) is None
        assert session.get(Digest, daily).last_run_at < utcnow() - timedelta(hours=23)
