"""``mailer subscribers …`` and ``mailer segments …`` end to end, in process."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from mailer.storage.base import utcnow
from subscribers.models import Subscriber, Topic

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "mailer" / "data" / "sample_subscribers.csv"


@pytest.fixture
def topics(db):
    with db.session() as session:
        session.add_all([Topic(slug="human-trafficking", name="Human Trafficking"),
                         Topic(slug="agriculture", name="Agriculture"),
                         Topic(slug="veterans", name="Veterans")])


def test_import_sample_then_segments(cli, topics):
    result = cli("subscribers", "import", SAMPLE, "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert (data["created"], data["updated"], data["skipped"], data["errors"]) == (25, 0, 0, [])
    again = cli("subscribers", "import", SAMPLE, "--json").json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 25)

    counted = cli("segments", "count", "--query", 'topic = "human-trafficking"', "--json").json()
    assert counted["count"] == 22 and counted["now"] + counted["in_digests"] == 22
    query = 'county in ("Cass", "Ward") and not zip ~ "581*"'
    assert cli("segments", "count", "--query", query, "--json").json()["count"] == 4
    created = cli("segments", "create", "North", "--query", query, "--json")
    assert created.exit_code == 0 and created.json()["count"] == 4
    assert cli("segments", "count", "North", "--json").json()["count"] == 4
    listed = cli("segments", "list", "--counts", "--json").json()
    assert [(s["name"], s["count"]) for s in listed] == [("North", 4)]
    duplicate = cli("segments", "create", "North", "--query", query)
    assert duplicate.exit_code != 0 and "already exists" in duplicate.stderr


def test_add_show_unsubscribe_forget(cli, topics):
    added = cli("subscribers", "add", "Jane@Example.org", "--name", "Jane", "--zip", "58102",
                "--county", "Cass", "--state", "nd", "--topics", "veterans,agriculture",
                "--frequency", "weekly", "--json")
    assert added.exit_code == 0, added.stderr
    assert added.json()["email"] == "jane@example.org" and added.json()["created"] is True
    shown = cli("subscribers", "show", "JANE@example.org", "--json").json()
    assert shown["status"] == "active" and shown["topics"] == ["agriculture", "veterans"]
    assert shown["state"] == "ND" and shown["frequency"] == "weekly"
    human = cli("subscribers", "show", "jane@example.org").stdout
    assert "None" not in human and "+00:00" not in human
    # The city comes from the ZIP; a field nobody gave reads as a dash, not as blank.
    assert re.search(r"city: Fargo\n", human) and re.search(r"district: —\n", human), human
    assert re.search(r"consent: staff .* at \d{4}-\d\d-\d\d \d\d:\d\d C[SD]T", human), human
    assert cli("subscribers", "unsubscribe", "jane@example.org").exit_code == 0
    assert cli("subscribers", "show", "jane@example.org", "--json").json()["status"] \
        == "unsubscribed"
    readd = cli("subscribers", "add", "jane@example.org", "--json").json()
    assert readd["status"] == "unsubscribed"
    assert cli("subscribers", "forget", "jane@example.org").exit_code == 0
    gone = cli("subscribers", "show", "jane@example.org")
    assert gone.exit_code != 0 and gone.stderr.startswith("mailer: error: no subscriber")


def test_errors_are_one_line_without_traceback(cli, topics, tmp_path):
    cases = [
        ("segments", "count", "--query", 'zip = "1" ; DROP TABLE subscribers --'),
        ("segments", "count", "nope"),
        ("segments", "count"),
        ("subscribers", "add", "not-an-address"),
        ("subscribers", "add", "a@example.org", "--topics", "nope"),
        ("subscribers", "import", tmp_path / "missing.csv"),
        ("subscribers", "import", ROOT / "pyproject.toml"),
    ]
    for args in cases:
        result = cli(*args)
        assert result.exit_code != 0, args
        assert result.stderr.startswith("mailer: error: "), (args, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    bad = cli("segments", "count", "--query", 'zip = "1" ; DROP TABLE subscribers --')
    assert "position 10" in bad.stderr


def test_import_reports_lines_and_human_summary(cli, topics, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("email,name,topics\nok@example.org,Ok,farming\nbad@,Bad,\n")
    result = cli("subscribers", "import", path)
    assert result.exit_code == 0
    assert "1 created" in result.stdout and "line 3: invalid email address" in result.stdout
    assert "unknown topic 'farming'" in result.stdout
    as_json = cli("subscribers", "import", path, "--json")
    assert json.loads(as_json.stdout)["errors"][0]["line"] == 3


def test_double_opt_in_sends_one_confirmation_each(cli, topics, tmp_path, settings):
    path = tmp_path / "list.csv"
    path.write_text("email,name\nnew1@example.org,One\nnew2@example.org,Two\n")
    result = cli("subscribers", "import", path, "--double-opt-in", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["confirmations"] == {"sent": 2, "failed": 0}
    messages = sorted(Path(settings.outbox_dir).rglob("*.eml"))
    assert len(messages) == 2
    body = messages[0].read_text()
    assert "/confirm/" in body
    assert cli("subscribers", "show", "new1@example.org", "--json").json()["status"] == "pending"
    again = cli("subscribers", "import", path, "--double-opt-in", "--json").json()
    assert again["confirmations"] == {"sent": 0, "failed": 0}
    assert len(sorted(Path(settings.outbox_dir).rglob("*.eml"))) == 2


def test_list_is_oldest_first_by_when_they_joined(cli, db, topics):
    """The help says "oldest first": by join time, not by the order rows were written."""
    for name in ("first-added", "second-added", "third-added"):
        cli("subscribers", "add", f"{name}@example.org")
    with db.session() as session:  # the third joined long ago (an imported consent time)
        session.execute(update(Subscriber).where(Subscriber.email == "third-added@example.org")
                        .values(created_at=utcnow() - timedelta(days=400)))
    listed = [r["email"] for r in cli("subscribers", "list", "--json").json()]
    assert listed == ["third-added@example.org", "first-added@example.org",
                      "second-added@example.org"]


def test_list_and_export(cli, topics, tmp_path):
    cli("subscribers", "import", SAMPLE)
    listed = cli("subscribers", "list", "--query", 'county = "Ward"', "--json").json()
    assert [r["county"] for r in listed] == ["Ward"] * 3
    assert len(cli("subscribers", "list", "--limit", "4", "--json").json()) == 4
    out = tmp_path / "out.csv"
    exported = cli("subscribers", "export", out, "--json").json()
    assert exported["exported"] == 25 and out.exists()
