"""A campaign's template is checked when the campaign is created or edited: a plain name of an
installed release template, never a path, a system email or a digest."""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import add_user, csrf_from, login
from tests.web.test_api import auth

BAD = ["../../etc/passwd", "press_release.html", "/tmp/x", "welcome", "digest", "base",
       "no_such_template", "a" * 200]


@pytest.mark.parametrize("template", BAD)
def test_the_cli_refuses_a_template_that_is_not_an_installed_release_template(
        cli, release_id, template):
    result = cli("campaigns", "create", "--release", release_id, "--query",
                 'status = "active"', "--template", template)
    assert result.exit_code != 0 and result.stderr.startswith("mailer: error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert cli("campaigns", "list", "--json").json() == []


def test_the_api_answers_400_for_a_path(client, db, cli, release_id):
    add_user(db, "alice", "author")
    token = cli("tokens", "create", "alice-script", "--user", "alice").stdout.strip()
    response = client.post("/api/campaigns", headers=auth(token), json={
        "release_id": release_id, "query": 'status = "active"',
        "template": "../../etc/passwd"})
    assert response.status_code == 400 and "template name" in response.json()["detail"]
    ok = client.post("/api/campaigns", headers=auth(token), json={
        "release_id": release_id, "query": 'status = "active"', "template": "press_release"})
    assert ok.status_code == 201


def test_an_edit_to_a_system_template_is_refused(cli, release_id):
    campaign_id = cli("campaigns", "create", "--release", release_id, "--query",
                      'status = "active"', "--json").json()["id"]
    result = cli("campaigns", "edit", campaign_id, "--template", "confirm_subscription")
    assert result.exit_code != 0 and "not a release template" in result.stderr


@pytest.mark.parametrize("template", ["../../etc/passwd", "welcome", "digest", "base",
                                      "no_such_template"])
def test_the_dashboard_refuses_a_template_that_is_not_an_installed_release_template(
        client, db, cli, release_id, template):
    """The new-campaign form names the problem (422, the form again) and creates nothing."""
    add_user(db, "alice", "author")
    assert login(client, "alice").status_code == 303
    page = client.get("/admin/campaigns/new")
    response = client.post("/admin/campaigns/new", follow_redirects=False, data={
        "csrf_token": csrf_from(page.text), "release_id": str(release_id),
        "query": 'status = "active"', "template": template})
    assert response.status_code == 422
    assert re.search(r"not a template name|not a release template|no release template",
                     response.text)
    assert cli("campaigns", "list", "--json").json() == []
