"""``mailer users add`` / ``mailer tokens create``, password hashing, sessions."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailer.cli import context
from mailer.web.auth import authenticate, create_user
from mailer.web.models import User

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@sqlite_only
def test_users_add_reads_password_from_stdin_and_hashes_it(cli, db):
    result = cli("users", "add", "carol", "--role", "approver", "--password-stdin",
                 input="a long passphrase\n")
    assert result.exit_code == 0, result.stderr
    assert "carol" in result.stdout
    with db.session() as session:
        user = session.scalar(select(User).where(User.name == "carol"))
        assert user.role == "approver"
        assert user.password_hash.startswith("$argon2id$")
        assert "a long passphrase" not in user.password_hash
        assert authenticate(session, "carol", "a long passphrase") is not None
        assert authenticate(session, "carol", "a long passphrasE") is None


@sqlite_only
@pytest.mark.parametrize("args, stdin, message", [
    (["users", "add", "dave", "--role", "boss", "--password-stdin"], "long enough pw\n",
     "unknown role 'boss'"),
    (["users", "add", "dave", "--role", "author", "--password-stdin"], "short\n",
     "at least 10 characters"),
    (["users", "add", "dave", "--role", "author", "--password-stdin"], "\n", "no password"),
    (["tokens", "create", "ci", "--user", "nobody"], None, "no user named 'nobody'"),
])
def test_cli_refusals_are_one_line(cli, args, stdin, message):
    result = cli(*args, input=stdin)
    assert result.exit_code != 0
    assert result.stderr.strip().startswith("mailer: error: ")
    assert message in result.stderr and "Traceback" not in result.stderr


@sqlite_only
def test_duplicate_user_and_token_names_are_refused(cli):
    assert cli("users", "add", "erin", "--role", "admin", "--password-stdin",
               input="long enough pw\n").exit_code == 0
    again = cli("users", "add", "erin", "--role", "admin", "--password-stdin",
                input="long enough pw\n")
    assert again.exit_code == 1 and "already exists" in again.stderr
    first = cli("tokens", "create", "ci")
    assert first.exit_code == 0 and first.stdout.strip().startswith("mlr_")
    assert "not shown again" in first.stderr
    assert cli("tokens", "create", "ci").exit_code == 1


@sqlite_only
def test_unbound_token_acts_under_its_own_name(cli, client, release_id):
    token = cli("tokens", "create", "newsroom-bot").stdout.strip()
    created = client.post("/api/campaigns", headers={"Authorization": f"Bearer {token}"},
                          json={"release_id": release_id, "query": 'status = "active"'})
    assert created.status_code == 201 and created.json()["created_by"] == "newsroom-bot"


@sqlite_only
def test_changing_a_password_ends_existing_sessions(client, db):
    from tests.web.conftest import login

    with db.session() as session:
        create_user(session, "frank", "admin", "first password")
    login(client, "frank", "first password")
    assert client.get("/admin/campaigns", follow_redirects=False).status_code == 200
    from mailer.web.auth import hash_password

    with db.session() as session:
        session.scalar(select(User).where(User.name == "frank")).password_hash = \
            hash_password("second password")
    assert client.get("/admin/campaigns", follow_redirects=False).status_code == 303


@sqlite_only
def test_tokens_list_and_revoke(cli, client):
    token = cli("tokens", "create", "press-bot").stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/campaigns", headers=headers).status_code == 200
    [listed] = cli("tokens", "list", "--json").json()
    assert listed["name"] == "press-bot" and listed["last_used_at"] is not None
    assert token not in cli("tokens", "list", "--json").stdout
    human = cli("tokens", "list").stdout
    # Shown as every time is shown: in the office's zone, to the minute, zone named.
    assert context.local(listed["last_used_at"]) in human
    assert listed["last_used_at"] not in human
    assert cli("tokens", "revoke", "press-bot").exit_code == 0
    assert client.get("/api/campaigns", headers=headers).status_code == 401
    missing = cli("tokens", "revoke", "press-bot")
    assert missing.exit_code == 1 and "no token named 'press-bot'" in missing.stderr


@sqlite_only
def test_users_list_and_password_change(cli, client):
    from tests.web.conftest import login

    cli("users", "add", "gina", "--role", "author", "--password-stdin", input="first password\n")
    listed = cli("users", "list", "--json")
    [user] = listed.json()
    assert (user["name"], user["role"], set(user)) == ("gina", "author",
                                                       {"id", "name", "role", "disabled",
                                                        "created_at"})
    assert "argon2" not in listed.stdout
    login(client, "gina", "first password")
    assert client.get("/admin/campaigns", follow_redirects=False).status_code == 200
    changed = cli("users", "password", "gina", "--password-stdin", input="second password\n")
    assert changed.exit_code == 0
    assert client.get("/admin/campaigns", follow_redirects=False).status_code == 303
    client.cookies.clear()
    assert login(client, "gina", "first password").status_code == 401
    assert login(client, "gina", "second password").status_code == 303
