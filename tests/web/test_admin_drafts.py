"""Editing a draft in the dashboard (with its preview beside the form) and duplicating a
campaign: the same actions as ``mailer campaigns edit`` and ``duplicate``."""

from __future__ import annotations

import pytest

from mailer.campaigns.models import Campaign, CampaignLog
from tests.web.conftest import add_subscriber, add_user, csrf_from, login
from tests.web.test_admin import act, create_draft


@pytest.fixture
def staff(db):
    add_user(db, "alice", "author")
    add_user(db, "bob", "approver")


def campaign(db, campaign_id: int) -> Campaign:
    with db.session() as session:
        found = session.get(Campaign, campaign_id)
        session.expunge(found)
        return found


def edit(client, campaign_id: int, **values):
    page = client.get(f"/admin/campaigns/{campaign_id}/edit")
    assert page.status_code == 200, page.text
    data = {"subject": "", "segment": "", "query": "", "template": "press_release", **values}
    return page, client.post(f"/admin/campaigns/{campaign_id}/edit",
                             data={"csrf_token": csrf_from(page.text), **data})


def test_an_author_edits_a_draft_beside_its_preview(client, db, staff, release_id, topics):
    add_subscriber(db, "farmer@example.org", topics=["agriculture"])
    login(client, "alice")
    campaign_id = create_draft(client, release_id)
    page, saved = edit(client, campaign_id, subject="A better subject",
                       query='topic = "human-trafficking"')
    assert f'src="/admin/campaigns/{campaign_id}/preview.html"' in page.text
    assert '<option value="press_release" selected>' in page.text  # installed templates only
    assert saved.status_code == 200 and "Saved: subject, query." in saved.text
    edited = campaign(db, campaign_id)
    assert (edited.subject, edited.query, edited.status) == (
        "A better subject", 'topic = "human-trafficking"', "draft")
    _, unchanged = edit(client, campaign_id, subject="A better subject",
                        query='topic = "human-trafficking"')
    assert unchanged.status_code == 422 and "nothing to change" in unchanged.text
    _, bad = edit(client, campaign_id, subject="A better subject", query='county = "Cass" and')
    assert bad.status_code == 422 and campaign(db, campaign_id).query == \
        'topic = "human-trafficking"'
    _, path = edit(client, campaign_id, subject="A better subject",
                   query='topic = "human-trafficking"', template="../../etc/passwd")
    assert path.status_code == 422 and "is not a template name" in path.text


def test_editing_an_approved_campaign_sends_it_back_for_approval(client, db, staff, release_id):
    login(client, "alice")
    campaign_id = create_draft(client, release_id)
    client.cookies.clear()
    login(client, "bob")
    act(client, campaign_id, "approve")
    page, saved = edit(client, campaign_id, subject="Changed after approval",
                       query='topic = "agriculture"')
    assert "needs approval (and scheduling) again" in page.text
    assert "It is a draft again and needs approval." in saved.text
    assert campaign(db, campaign_id).status == "draft"


def test_duplicate_opens_the_copy_for_editing(client, db, staff, release_id):
    login(client, "alice")
    original = create_draft(client, release_id)
    page = client.get(f"/admin/campaigns/{original}")
    copied = client.post(f"/admin/campaigns/{original}/duplicate",
                         data={"csrf_token": csrf_from(page.text)}, follow_redirects=False)
    assert copied.status_code == 303
    copy_id = int(copied.headers["location"].split("/")[-2])
    assert copied.headers["location"] == f"/admin/campaigns/{copy_id}/edit"
    copy, source = campaign(db, copy_id), campaign(db, original)
    assert (copy.release_id, copy.query, copy.subject, copy.created_by, copy.status) == (
        source.release_id, source.query, source.subject, "alice", "draft")
    with db.session() as session:
        reasons = [e.reason for e in session.query(CampaignLog).filter_by(campaign_id=copy_id)]
    assert reasons == [f"created as a copy of campaign {original}"]


def test_the_edit_form_sets_the_preheader_and_intro(client, db, staff, release_id):
    login(client, "alice")
    campaign_id = create_draft(client, release_id)
    page, saved = edit(client, campaign_id, subject="Out now", query='topic = "agriculture"',
                       preheader="Out this Friday", intro="A note.\n\n<b>Second</b> one.")
    assert '<label for="preheader">' in page.text and '<label for="intro">' in page.text
    assert saved.status_code == 200 and "Saved: subject, preheader, intro." in saved.text
    edited = campaign(db, campaign_id)
    assert (edited.preheader, edited.intro) == ("Out this Friday", "A note.\n\n<b>Second</b> one.")
    shown = client.get(f"/admin/campaigns/{campaign_id}").text
    assert "<dd>Out this Friday</dd>" in shown and "&lt;b&gt;Second&lt;/b&gt; one." in shown
    preview = client.get(f"/admin/campaigns/{campaign_id}/preview.html").text
    assert "Out this Friday" in preview and "&lt;b&gt;Second&lt;/b&gt; one.</p>" in preview
    _, long = edit(client, campaign_id, subject="Out now", query='topic = "agriculture"',
                   preheader="x" * 151, intro=edited.intro)
    assert long.status_code == 422
    assert "the preheader is 151 characters; at most 150" in long.text
    assert campaign(db, campaign_id).preheader == "Out this Friday"


def test_the_new_campaign_form_takes_them_too(client, db, staff, release_id):
    login(client, "alice")
    page = client.get(f"/admin/campaigns/new?release_id={release_id}")
    assert '<label for="preheader">' in page.text and '<label for="intro">' in page.text
    response = client.post("/admin/campaigns/new", data={
        "csrf_token": csrf_from(page.text), "release_id": str(release_id),
        "query": 'topic = "agriculture"', "subject": "", "template": "press_release",
        "segment": "", "preheader": "Out this Friday", "intro": "One.\n\nTwo."},
        follow_redirects=False)
    assert response.status_code == 303, response.text
    created = campaign(db, int(response.headers["location"].rsplit("/", 1)[1]))
    assert (created.preheader, created.intro) == ("Out this Friday", "One.\n\nTwo.")
