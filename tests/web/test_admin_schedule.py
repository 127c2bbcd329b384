"""The dashboard's schedule page (/admin/schedule): the next 14 days in office time, with
links, from the same data as ``mailer.scheduling.agenda`` (tested in tests/scheduling)."""

from __future__ import annotations

from datetime import timedelta

from mailer.campaigns.models import CampaignStatus as S
from mailer.storage.base import utcnow
from tests.campaigns.factory import add_audience, add_campaign
from tests.web.conftest import add_user, login


def test_the_dashboard_page_shows_it_in_office_time(client, db, settings):
    add_user(db, "alice", "author")
    at = (utcnow() + timedelta(days=2)).replace(minute=30, second=0, microsecond=0)
    with db.session() as session:
        add_audience(session, 2)
        campaign_id = add_campaign(session, status=S.SCHEDULED, approved_by="bob",
                                   scheduled_at=at).id
    login(client, "alice")
    page = client.get("/admin/schedule")
    assert page.status_code == 200
    local = at.astimezone(settings.zone)
    assert f"{local:%A, %B} {local.day}, {local.year}</h2>" in page.text
    assert f"{local:%H:%M %Z}" in page.text
    assert f'<a href="/admin/campaigns/{campaign_id}">' in page.text
    assert "2 people" in page.text and "approved by bob" in page.text
    assert 'href="/admin/schedule" aria-current="page">Schedule</a>' in page.text
    assert "No scheduler is running" in page.text


def test_the_schedule_needs_a_login(client):
    assert client.get("/admin/schedule", follow_redirects=False).status_code in (303, 307)
