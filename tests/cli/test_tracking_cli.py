"""``mailer events import``, ``mailer campaigns status|report``, ``mailer deliveries show``."""

from __future__ import annotations

import csv
import json
import re

import pytest

from tests.tracking.factory import make_campaign, make_delivery, make_subscriber, sg_event


@pytest.fixture
def campaign(db):
    """A sent campaign to two people; returns (campaign id, saved webhook body as a list)."""
    with db.session() as session:
        campaign = make_campaign(session, status="sent", subject="Farm bill update")
        a = make_delivery(session, campaign, make_subscriber(session, "ann@example.org",
                                                             county="Cass"))
        b = make_delivery(session, campaign, make_subscriber(session, "bob@example.net"))
    body = [sg_event(a, "processed"), sg_event(a, "delivered"), sg_event(a, "open"),
            sg_event(b, "bounce", type="bounce", reason="550 5.1.1 no such user")]
    return campaign.id, body


def test_events_import_replays_a_saved_body_once(cli, campaign, tmp_path):
    campaign_id, body = campaign
    saved = tmp_path / "webhook.json"
    saved.write_text(json.dumps(body))
    first = cli("events", "import", saved, "--json")
    assert first.exit_code == 0, first.stderr
    data = first.json()
    assert (data["received"], data["stored"], data["duplicates"], data["matched"]) == (4, 4, 0, 4)
    assert data["suppressed"][0]["status"] == "bounced"
    again = cli("events", "import", saved, "--json").json()
    assert (again["stored"], again["duplicates"], again["suppressed"]) == (0, 4, [])
    human = cli("events", "import", saved)
    assert human.exit_code == 0 and "4 already known" in human.stdout


def test_events_import_accepts_json_lines(cli, campaign, tmp_path):
    _, body = campaign
    saved = tmp_path / "events.ndjson"
    saved.write_text("\n".join(json.dumps(item) for item in body) + "\n")
    assert cli("events", "import", saved, "--json").json()["stored"] == 4


@pytest.mark.parametrize("content,message", [
    ("{not json", "line 1 is not valid JSON"),
    ('"just a string"', "expected a JSON array"),
])
def test_events_import_refuses_a_bad_file_in_one_line(cli, tmp_path, content, message):
    saved = tmp_path / "bad.json"
    saved.write_text(content)
    result = cli("events", "import", saved, "--json")
    assert result.exit_code != 0 and result.stdout == ""
    assert result.stderr.startswith("mailer: error:") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_events_import_missing_file(cli, tmp_path):
    result = cli("events", "import", tmp_path / "nope.json")
    assert result.exit_code != 0 and "mailer: error:" in result.stderr
    assert "Traceback" not in result.stderr


def test_campaigns_status_json(cli, campaign, tmp_path):
    campaign_id, body = campaign
    (tmp_path / "b.json").write_text(json.dumps(body))
    cli("events", "import", tmp_path / "b.json")
    result = cli("campaigns", "status", campaign_id, "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert set(data) >= {"id", "status", "counts", "status_reason"}
    counts = data["counts"]
    assert (counts["recipients"], counts["delivered"], counts["bounced"], counts["opened"]) == \
           (2, 1, 1, 1)
    human = cli("campaigns", "status", campaign_id)
    assert "delivered" in human.stdout and "sent" in human.stdout


def test_campaigns_status_unknown_id(cli):
    result = cli("campaigns", "status", 999, "--json")
    assert result.exit_code != 0
    assert result.stderr.strip() == "mailer: error: no campaign with id 999"


def test_campaigns_report_writes_html_csv_and_json(cli, campaign, tmp_path):
    campaign_id, body = campaign
    (tmp_path / "b.json").write_text(json.dumps(body))
    cli("events", "import", tmp_path / "b.json")
    html, csv_file = tmp_path / "report.html", tmp_path / "log.csv"
    result = cli("campaigns", "report", campaign_id, "--html", html, "--csv", csv_file, "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["rates"]["delivery"] == 0.5 and data["rates"]["bounce"] == 0.5
    assert data["html"] == str(html) and data["csv_rows"] == 2
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 2
    rows = list(csv.DictReader(csv_file.open()))
    assert {r["email"]: r["status"] for r in rows} == {"ann@example.org": "delivered",
                                                       "bob@example.net": "bounced"}
    human = cli("campaigns", "report", campaign_id)
    assert human.exit_code == 0 and "Farm bill update" in human.stdout


def test_deliveries_show_timeline(cli, campaign, tmp_path):
    _, body = campaign
    (tmp_path / "b.json").write_text(json.dumps(body))
    cli("events", "import", tmp_path / "b.json")
    data = cli("deliveries", "show", "BOB@example.net", "--json").json()
    assert data["subscriber"]["status"] == "bounced"
    assert [e["type"] for e in data["deliveries"][0]["events"]] == ["bounced"]
    assert data["deliveries"][0]["events"][0]["reason"] == "550 5.1.1 no such user"
    human = cli("deliveries", "show", "bob@example.net")
    assert "Farm bill update" in human.stdout and "hard bounce" in human.stdout
    # Times read as everywhere else in the CLI: office zone, one format, no raw ISO text.
    assert re.search(r"bounced \d{4}-\d\d-\d\d \d\d:\d\d C[SD]T", human.stdout), human.stdout
    assert "T0" not in human.stdout and "+00:00" not in human.stdout and "None" not in human.stdout


def test_deliveries_show_says_written_for_the_outbox_as_the_report_does(cli, campaign):
    data = cli("deliveries", "show", "ann@example.org", "--json").json()
    assert data["deliveries"][0]["status"] == "accepted" and data["handed_off_as"] == "written"
    human = cli("deliveries", "show", "ann@example.org").stdout
    assert "“Farm bill update”: written" in human and "accepted" not in human


def test_deliveries_show_unknown_person(cli):
    result = cli("deliveries", "show", "nobody@example.org", "--json")
    assert result.exit_code != 0 and "no subscriber, delivery or event" in result.stderr
    bad = cli("deliveries", "show", "not-an-address", "--json")
    assert bad.exit_code != 0 and bad.stderr.startswith("mailer: error: invalid email")


def test_events_import_reads_stdin(cli, campaign):
    _, body = campaign
    result = cli("events", "import", "-", "--json", input=json.dumps(body))
    assert result.exit_code == 0, result.stderr
    assert result.json()["stored"] == 4


def test_events_import_refuses_a_file_over_the_limit(cli, tmp_path, monkeypatch):
    from mailer.cli import context

    monkeypatch.setenv("MAILER_MAX_IMPORT_BYTES", "100")
    context.reset()
    saved = tmp_path / "big.json"
    saved.write_text(json.dumps([{"event": "open", "sg_event_id": str(i)} for i in range(50)]))
    result = cli("events", "import", saved)
    assert result.exit_code != 0 and "MAILER_MAX_IMPORT_BYTES" in result.stderr
