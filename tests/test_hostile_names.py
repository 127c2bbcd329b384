"""NUL and other control characters never reach a stored name: the sign-up and preference
forms, the API and import files all clean names with ``subscribers.text.clean_text`` (on
PostgreSQL a NUL used to fail the insert; anywhere, an escape sequence or a line break
would reach mail headers and terminals)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mailer.web.app import create_app
from subscribers import service
from subscribers.importer import import_subscribers
from subscribers.text import clean_text
from tests.web.conftest import add_subscriber, add_user, csrf_from

#: Every C0 control, DEL and a few C1 ones, around and inside a name.
HOSTILE = "\x00Pat\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13" \
          "\x14\x15\x16\x17\x18\x19\x1a\x1b[2J\x1c\x1d\x1e\x1fDoe\x7f\x85\x9b\x00"
CLEAN = "Pat [2J Doe"


@pytest.mark.parametrize("raw, clean", [
    (HOSTILE, CLEAN),
    ("Pat Doe", "Pat Doe"),
    ("  Zoë \t Ünïcode\r\n", "Zoë Ünïcode"),
    ("\x00\x7f\x1b", None),
    ("", None),
    (None, None),
    ("x\ud800y", "x\ufffdy"),  # a lone surrogate, which no database stores
])
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean
    assert clean_text(clean) == clean  # idempotent


def test_clean_text_cuts_without_leaving_a_space():
    assert clean_text("ab cd", 3) == "ab" and clean_text("ab cd", 3) == clean_text("ab", 3)


@pytest.fixture
def client(settings, db):
    with TestClient(create_app(settings, db), base_url="https://testserver") as client:
        yield client


def _name(db, email: str) -> str | None:
    with db.session() as session:
        return service.find_by_email(session, email).name


def test_signup_form_strips_control_characters(client, db):
    page = client.get("/subscribe")
    response = client.post("/subscribe", data={
        "csrf_token": csrf_from(page.text), "email": "pat@example.org",
        "frequency": "immediate", "name": HOSTILE})
    assert response.status_code == 200
    assert _name(db, "pat@example.org") == CLEAN


def test_preferences_form_strips_control_characters(client, db):
    person_id = add_subscriber(db, "pref@example.org")
    token = client.app.state.signer.make(person_id, "preferences")
    page = client.get(f"/preferences/{token}")
    response = client.post(f"/preferences/{token}", data={
        "csrf_token": csrf_from(page.text), "frequency": "daily", "name": HOSTILE,
        "action": "save"})
    assert response.status_code == 200
    assert _name(db, "pref@example.org") == CLEAN


def test_api_strips_control_characters(client, cli, db):
    add_user(db, "bob", "approver")  # adding subscribers changes the list
    token = cli("tokens", "create", "bob-script", "--user", "bob").stdout.strip()
    response = client.post("/api/subscribers", headers={"Authorization": f"Bearer {token}"},
                           json={"email": "api@example.org", "name": HOSTILE,
                                 "double_opt_in": False})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == CLEAN == _name(db, "api@example.org")


def test_import_file_strips_control_characters(db, tmp_path):
    # Past the first 8 KiB, where a NUL no longer makes the file look binary.
    filler = "".join(f"filler{i}@example.org,Filler {i}\n" for i in range(400))
    hostile = HOSTILE.replace("\n", "").replace("\r", "").replace("\x85", "")
    path = tmp_path / "list.csv"
    path.write_text("email,first_name,last_name\n" + filler
                    + f"ctl@example.org,{hostile},\x00Smith\x07\n", encoding="utf-8")
    report = import_subscribers(db, path).to_dict()
    assert report["errors"] == [] and report["created"] == 401
    assert _name(db, "ctl@example.org") == CLEAN + " Smith"
