"""Users and API tokens in the dashboard (admins only): add, set roles, reset passwords,
disable and remove users; create tokens (the secret shown once) and revoke them (asked
first). The same functions as ``mailer users …`` / ``mailer tokens …``."""

from __future__ import annotations

import html
import json
import logging
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from mailer.web.models import ApiToken, User
from tests.web.conftest import add_user, csrf_from, login

PASSWORD = "correct horse battery"


@pytest.fixture
def admin(db, client):
    add_user(db, "ada", "admin")
    assert login(client, "ada").status_code == 303
    return client


def post(client, path: str, page: str = "/admin/users", **data):
    token = csrf_from(client.get(page).text)
    return client.post(path, data={"csrf_token": token, **data}, follow_redirects=False)


def user_id(db, name: str) -> int:
    with db.session() as session:
        return session.scalar(select(User.id).where(User.name == name))


def api(client, token: str):
    return client.get("/api/releases", headers={"Authorization": f"Bearer {token}"})


def test_an_admin_adds_users_who_can_then_log_in(admin, app, db, caplog):
    caplog.set_level(logging.DEBUG)
    added = post(admin, "/admin/users", name="alice", password="a new password 1",
                 role="author")
    assert added.status_code == 303
    page = admin.get("/admin/users").text
    assert "User alice added (author)." in page and ">alice</a>" in page
    short = post(admin, "/admin/users", name="carl", password="short1", role="approver")
    assert short.status_code == 422 and "at least 10 characters" in short.text
    assert 'value="carl"' in short.text and "short1" not in short.text  # never echoed
    assert post(admin, "/admin/users", name="alice", password=PASSWORD,
                role="author").status_code == 422  # taken
    assert "a new password 1" not in caplog.text and "short1" not in caplog.text

    with TestClient(app, base_url="https://testserver") as other:
        assert login(other, "alice", "a new password 1").status_code == 303


def test_non_admins_are_refused_every_access_page(db, client):
    add_user(db, "bob", "approver")
    login(client, "bob")
    token = csrf_from(client.get("/admin/campaigns").text)
    for path in ("/admin/users", "/admin/tokens", f"/admin/users/{user_id(db, 'bob')}"):
        assert client.get(path).status_code == 403, path
    for path in ("/admin/users", "/admin/tokens", "/admin/tokens/revoke",
                 f"/admin/users/{user_id(db, 'bob')}/role"):
        refused = client.post(path, data={"csrf_token": token, "role": "admin",
                                          "name": "x", "password": PASSWORD})
        assert refused.status_code == 403, path
    with db.session() as session:
        assert session.scalar(select(User.role).where(User.name == "bob")) == "approver"
    assert 'href="/admin/users"' not in client.get("/admin/campaigns").text


def test_role_password_disable_and_remove(admin, app, db, cli):
    add_user(db, "alice", "author")
    alice = user_id(db, "alice")
    page = f"/admin/users/{alice}"
    assert post(admin, f"{page}/role", page, role="approver").status_code == 303
    assert "alice is now an approver." in admin.get(page).text
    assert post(admin, f"{page}/role", page, role="boss").status_code == 303
    assert "unknown role" in admin.get(page).text
    token = cli("tokens", "create", "alice-script", "--user", "alice").stdout.strip()
    assert api(admin, token).status_code == 200

    with TestClient(app, base_url="https://testserver") as theirs:
        login(theirs, "alice")
        assert theirs.get("/admin/campaigns").status_code == 200
        assert post(admin, f"{page}/disable", page).status_code == 303
        assert "disabled" in admin.get(page).text
        # Their open session ends, they cannot log in, their token is refused.
        assert theirs.get("/admin/campaigns", follow_redirects=False).status_code == 303
        assert login(theirs, "alice").status_code != 303
        assert api(admin, token).status_code == 401
        refused = post(admin, "/admin/tokens", "/admin/tokens", name="more", user="alice")
        assert refused.status_code == 422 and "alice is disabled" in refused.text
        # A new password enables them again.
        assert post(admin, f"{page}/password", page,
                    password="another password 2").status_code == 303
        assert login(theirs, "alice", "another password 2").status_code == 303
        assert api(admin, token).status_code == 200

    asked = post(admin, f"{page}/remove", page)
    assert asked.status_code == 200 and "Remove the user alice?" in asked.text
    assert user_id(db, "alice") == alice  # nothing done yet
    done = post(admin, f"{page}/remove", page, confirmed="yes")
    assert done.status_code == 303 and done.headers["location"] == "/admin/users"
    assert user_id(db, "alice") is None and api(admin, token).status_code == 401
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(ApiToken)) == 0


def test_the_last_admin_who_can_log_in_is_kept(admin, db):
    ada = user_id(db, "ada")
    page = f"/admin/users/{ada}"
    for move, data in (("role", {"role": "author"}), ("disable", {}),
                       ("remove", {"confirmed": "yes"})):
        assert post(admin, f"{page}/{move}", page, **data).status_code == 303
        assert "only admin who can log in" in html.unescape(admin.get(page).text), move
    with db.session() as session:
        ada_row = session.get(User, ada)
        assert ada_row.role == "admin" and ada_row.password_hash


def test_a_token_is_shown_once_and_revoked_after_asking(admin, db):
    add_user(db, "alice", "author")
    made = post(admin, "/admin/tokens", "/admin/tokens", name="feed script", user="alice")
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    secret = re.search(r'id="secret" readonly value="([^"]+)"', made.text).group(1)
    assert secret.startswith("mlr_") and "shown only this once" in made.text
    assert api(admin, secret).status_code == 200
    listing = admin.get("/admin/tokens").text
    assert "feed script" in listing and secret not in listing
    assert post(admin, "/admin/tokens", "/admin/tokens", name="feed script",
                user="alice").status_code == 422  # the name is taken

    asked = post(admin, "/admin/tokens/revoke", "/admin/tokens", name="feed script")
    assert asked.status_code == 200 and "Revoke the API token “feed script”?" in asked.text
    assert api(admin, secret).status_code == 200  # not yet
    done = post(admin, "/admin/tokens/revoke", "/admin/tokens", name="feed script",
                confirmed="yes")
    assert done.status_code == 303 and api(admin, secret).status_code == 401
    assert "Token “feed script” revoked." in admin.get("/admin/tokens").text
    missing = post(admin, "/admin/tokens/revoke", "/admin/tokens", name="nope", confirmed="yes")
    assert missing.status_code == 303 and "no token named" in admin.get("/admin/tokens").text


def test_the_cli_has_the_same_moves(cli, db):
    add_user(db, "ada", "admin")
    add_user(db, "alice", "author")
    assert cli("users", "role", "alice", "--role", "approver").exit_code == 0
    assert cli("users", "disable", "alice").exit_code == 0
    listed = cli("users", "list", "--json")
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["alice"]["role"] == "approver" and rows["alice"]["disabled"] is True
    refused = cli("users", "disable", "ada")
    assert refused.exit_code != 0 and "only admin" in refused.stderr
    assert cli("users", "remove", "alice").exit_code == 0
    assert user_id(db, "alice") is None
    missing = cli("users", "remove", "alice")
    assert missing.exit_code != 0 and "no user named" in missing.stderr
