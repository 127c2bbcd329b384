"""A full disk under SQLite, seen from the faces: a command answers one line and exits 1, a
web page answers 503 with Retry-After, and neither leaves anything half-written (the
transaction that hit the full disk is rolled back). The disk is real: a small tmpfs filled
by a filler file (tests/support/small_disk.py); the send itself is in
tests/delivery/test_disk_full.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from mailer.web.app import create_app
from subscribers.models import Subscriber
from tests.support.small_disk import database_url, disk
from tests.web.conftest import csrf_from

__all__ = ["database_url", "disk"]  # fixtures, imported so they apply here
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
ONE_LINE = ("mailer: error: disk full (database or disk is full); the write in progress was "
            "rolled back: free space and run the command again")


def _people(db) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Subscriber))


@pytest.mark.parametrize("command", [
    ["subscribers", "import", "{csv}"],
    ["subscribers", "add", "new.person@example.org", "--name", "New Person"],
])
def test_a_command_onto_a_full_disk_answers_one_line_and_writes_nothing(
        db, cli, disk, tmp_path, command):
    csv = tmp_path / "people.csv"  # on the roomy disk: only the database is on the full one
    csv.write_text("email,name\n" + "".join(f"p{i}@example.org,Person {i}\n"
                                            for i in range(500)))
    disk.fill()
    result = cli(*[part.format(csv=csv) for part in command])
    disk.free()
    assert result.exit_code == 1
    assert result.stderr.strip() == ONE_LINE, result.stderr
    assert _people(db) == 0
    again = cli(*[part.format(csv=csv) for part in command])
    assert again.exit_code == 0, again.stderr


def test_a_signup_onto_a_full_disk_is_a_503_and_saves_nothing(settings, db, disk, caplog):
    with TestClient(create_app(settings, db), base_url="https://testserver",
                    raise_server_exceptions=False) as client:
        form = {"csrf_token": csrf_from(client.get("/subscribe").text),
                "email": "pat@example.org", "frequency": "immediate", "name": "Pat"}
        disk.fill()
        response = client.post("/subscribe", data=form)
        disk.free()
        assert response.status_code == 503
        assert response.headers["retry-after"] == "30"
        assert "The server&#39;s disk is full, so nothing was saved." in response.text
        assert "Traceback" not in caplog.text
        assert _people(db) == 0
        assert client.post("/subscribe", data=form).status_code == 200
    assert _people(db) == 1
