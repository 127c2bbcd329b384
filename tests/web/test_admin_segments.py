"""Saved segments in the dashboard: create, edit (count, sample, campaigns it changes),
delete (refused while a campaign uses it), and their one-line refusals."""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import add_subscriber, add_user, csrf_from, login


@pytest.fixture
def author(client, db, topics):
    add_user(db, "alice", "author")
    for n in range(12):
        add_subscriber(db, f"grower{n:02d}@example.org", topics=["agriculture"])
    add_subscriber(db, "gone@example.org", topics=["agriculture"], status="pending")
    login(client, "alice")


def save(client, path: str, **values):
    page = client.get(path)
    return client.post(path, data={"csrf_token": csrf_from(page.text), **values})


def test_create_shows_the_count_and_a_sample_of_who_it_reaches(client, author):
    saved = save(client, "/admin/segments/new", name="  Growers ",
                 query='topic = "agriculture"')
    assert saved.status_code == 200 and "Segment “Growers” saved." in saved.text
    assert '<span class="count-live" data-field="count">12</span>' in saved.text
    sample = re.findall(r'<li><a href="/admin/subscribers/\d+">([^<]+)</a>', saved.text)
    assert len(sample) == 10 and "gone@example.org" not in saved.text
    listed = client.get("/admin/segments")
    assert "Growers" in listed.text and 'data-live-count="/admin/segments/count?segment=Growers"' \
        in listed.text
    assert client.get("/admin/segments/count", params={"segment": "Growers"}).json() == \
        {"count": 12, "now": 12, "in_digests": 0}


def test_bad_or_taken_names_and_queries_are_one_line_on_the_form(client, author):
    save(client, "/admin/segments/new", name="Growers", query='topic = "agriculture"')
    taken = save(client, "/admin/segments/new", name="Growers", query='county = "Cass"')
    assert taken.status_code == 422 and "already exists" in taken.text
    broken = save(client, "/admin/segments/new", name="Broken", query='county = "Cass" and')
    assert broken.status_code == 422 and 'value="county = &#34;Cass&#34; and"' in broken.text


def test_edit_lists_the_campaigns_it_changes_and_delete_is_refused_while_used(
        client, db, author, release_id):
    save(client, "/admin/segments/new", name="Growers", query='topic = "agriculture"')
    segment_page = client.get("/admin/segments")
    segment_id = int(re.search(r'href="/admin/segments/(\d+)"', segment_page.text).group(1))
    page = client.get("/admin/campaigns/new")
    made = client.post("/admin/campaigns/new", data={
        "csrf_token": csrf_from(page.text), "release_id": str(release_id), "query": "",
        "segment": "Growers", "subject": "", "template": "press_release"},
        follow_redirects=False)
    campaign_id = int(made.headers["location"].rsplit("/", 1)[1])
    edit = client.get(f"/admin/segments/{segment_id}")
    assert f'href="/admin/campaigns/{campaign_id}"' in edit.text and "has not started" in edit.text
    renamed = save(client, f"/admin/segments/{segment_id}", name="Farm country",
                   query='topic = "agriculture" and zip ~ "581*"')
    assert "name and query changed" in renamed.text
    assert '<span class="count-live" data-field="count">0</span>' in renamed.text
    refused = client.post(f"/admin/segments/{segment_id}/delete",
                          data={"csrf_token": csrf_from(renamed.text)})
    assert "is used by a campaign" in refused.text
    assert client.get(f"/admin/segments/{segment_id}").status_code == 200
    with db.session() as session:
        from mailer.campaigns.models import Campaign
        session.delete(session.get(Campaign, campaign_id))
    deleted = client.post(f"/admin/segments/{segment_id}/delete",
                          data={"csrf_token": csrf_from(renamed.text)})
    assert "Segment “Farm country” deleted." in deleted.text
    assert client.get(f"/admin/segments/{segment_id}").status_code == 404


def test_the_cli_deletes_with_the_same_refusal(cli, db, topics, release_id):
    assert cli("segments", "create", "Growers", "--query", 'topic = "agriculture"').exit_code == 0
    assert cli("campaigns", "create", "--release", release_id, "--segment", "Growers",
               "--by", "alice").exit_code == 0
    refused = cli("segments", "delete", "Growers")
    assert refused.exit_code == 1 and "is used by a campaign" in refused.stderr
    assert [s["name"] for s in cli("segments", "list", "--json").json()] == ["Growers"]


def test_a_changed_query_sends_approved_campaigns_back_to_draft_in_both_faces(
        cli, db, topics, release_id):
    assert cli("segments", "create", "Growers", "--query", 'topic = "agriculture"').exit_code == 0
    ids = [cli("campaigns", "create", "--release", release_id, "--segment", "Growers",
               "--by", "alice", "--json").json()["id"] for _ in range(2)]
    assert cli("campaigns", "approve", ids[0], "--by", "bob").exit_code == 0
    renamed = cli("segments", "update", "Growers", "--name", "Farmers", "--by", "carol",
                  "--json")
    assert renamed.exit_code == 0 and renamed.json()["withdrawn"] == []
    assert cli("campaigns", "status", ids[0], "--json").json()["status"] == "approved"
    changed = cli("segments", "update", "Farmers", "--query", 'county = "Cass"',
                  "--by", "carol", "--json")
    assert changed.exit_code == 0 and changed.json()["withdrawn"] == [ids[0]]
    assert changed.json()["query"] == 'county = "Cass"'
    assert [cli("campaigns", "status", i, "--json").json()["status"] for i in ids] == \
        ["draft", "draft"]
    assert cli("segments", "update", "Farmers", "--by", "carol").exit_code == 2


def test_the_dashboard_says_which_campaigns_lost_their_approval(
        client, cli, db, author, release_id):
    assert cli("segments", "create", "Growers", "--query", 'topic = "agriculture"').exit_code == 0
    campaign_id = cli("campaigns", "create", "--release", release_id, "--segment", "Growers",
                      "--by", "alice", "--json").json()["id"]
    assert cli("campaigns", "approve", campaign_id, "--by", "bob").exit_code == 0
    listed = client.get("/admin/segments")
    segment_id = int(re.search(r'href="/admin/segments/(\d+)"', listed.text).group(1))
    assert "approved again" in client.get(f"/admin/segments/{segment_id}").text
    saved = save(client, f"/admin/segments/{segment_id}", name="Growers",
                 query='topic = "agriculture" and county = "Cass"')
    assert f"#{campaign_id} went back to draft" in saved.text
    assert cli("campaigns", "status", campaign_id, "--json").json()["status"] == "draft"
