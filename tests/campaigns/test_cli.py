"""``mailer campaigns …`` and ``mailer schedule list`` end to end through the CLI."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from mailer.storage.base import utcnow
from tests.campaigns.factory import add_audience, add_release


@pytest.fixture
def release_id(db):
    with db.session() as session:
        add_audience(session, 2)
        return add_release(session, title="Heitkamp bill passes").id


def created(cli, release_id, *extra) -> dict:
    result = cli("campaigns", "create", "--release", release_id, "--query", 'county = "Cass"',
                 "--by", "alice", "--json", *extra)
    assert result.exit_code == 0, result.stderr
    return result.json()


def approved(cli, release_id) -> int:
    campaign = created(cli, release_id)
    result = cli("campaigns", "approve", campaign["id"], "--by", "bob", "--json")
    assert result.exit_code == 0, result.stderr
    return campaign["id"]


def next_local_noon(settings, days: int = 3) -> datetime:
    day = (utcnow().astimezone(settings.zone) + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, 12, 0)


def test_create_prints_one_json_document(cli, release_id):
    campaign = created(cli, release_id)
    assert campaign["status"] == "draft" and campaign["created_by"] == "alice"
    assert campaign["subject"] == "Heitkamp bill passes"


def test_self_approval_is_refused_on_the_command_line(cli, release_id):
    campaign = created(cli, release_id)
    result = cli("campaigns", "approve", campaign["id"], "--by", "alice")
    assert result.exit_code != 0
    assert result.stderr.startswith("mailer: error: ") and "someone else" in result.stderr
    assert "Traceback" not in result.stderr
    assert cli("campaigns", "show", campaign["id"], "--json").json()["status"] == "draft"


def test_naive_time_is_office_time_stored_in_utc(cli, release_id, settings):
    campaign_id = approved(cli, release_id)
    local = next_local_noon(settings)
    result = cli("campaigns", "schedule", campaign_id, "--at", local.isoformat(), "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    stored = datetime.fromisoformat(data["scheduled_at"])
    assert stored.utcoffset() == timedelta(0)
    assert stored == local.replace(tzinfo=settings.zone)
    assert data["scheduled_for"].startswith(f"{local:%Y-%m-%d} 12:00 C")  # CST or CDT
    assert "no scheduler is running" in result.stderr


def test_explicit_offset_is_honoured(cli, release_id, settings):
    campaign_id = approved(cli, release_id)
    local = next_local_noon(settings)
    result = cli("campaigns", "schedule", campaign_id, "--at", f"{local:%Y-%m-%d}T15:00:00Z",
                 "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["scheduled_at"].startswith(f"{local:%Y-%m-%d}T15:00:00")


def test_time_skipped_by_the_clock_change_is_refused(cli, release_id):
    campaign_id = approved(cli, release_id)
    result = cli("campaigns", "schedule", campaign_id, "--at", "2031-03-09T02:30")
    assert result.exit_code != 0 and "does not exist in America/Chicago" in result.stderr


def test_schedule_needs_at_or_now(cli, release_id):
    campaign_id = approved(cli, release_id)
    refused = cli("campaigns", "schedule", campaign_id)
    assert refused.exit_code == 2 and "exactly one of --at or --now" in refused.stderr


def test_options_that_cannot_go_together_exit_2_with_one_line(cli):
    for args in (("segments", "count", "x", "--query", 'county = "Cass"'), ("segments", "count")):
        result = cli(*args)
        assert result.exit_code == 2, args
        assert result.stderr.count("\n") == 1 and "give" in result.stderr


def test_quiet_hours_refused_at_schedule_time_with_next_allowed_time(
        cli, release_id, settings, monkeypatch):
    monkeypatch.setenv("MAILER_QUIET_HOURS", "21:00-07:00")
    from mailer.cli import context

    context.reset()
    campaign_id = approved(cli, release_id)
    local = next_local_noon(settings).replace(hour=22, minute=30)
    result = cli("campaigns", "schedule", campaign_id, "--at", local.isoformat())
    assert result.exit_code != 0
    assert "quiet hours" in result.stderr
    assert f"{(local + timedelta(days=1)):%Y-%m-%d} 07:00" in result.stderr
    ok = cli("campaigns", "schedule", campaign_id, "--at",
             local.replace(hour=7, minute=0).isoformat(), "--json")
    assert ok.exit_code == 0, ok.stderr


def test_blackout_refused_then_overridden_with_a_recorded_reason(
        cli, release_id, settings, monkeypatch):
    election = (utcnow().astimezone(settings.zone) + timedelta(days=20)).date()
    monkeypatch.setenv("MAILER_ELECTION_DATES", election.isoformat())
    from mailer.cli import context

    context.reset()
    campaign_id = approved(cli, release_id)
    when = next_local_noon(settings).isoformat()
    refused = cli("campaigns", "schedule", campaign_id, "--at", when)
    assert refused.exit_code != 0 and "election blackout" in refused.stderr
    assert election.isoformat() in refused.stderr
    no_reason = cli("campaigns", "schedule", campaign_id, "--at", when, "--override-blackout")
    assert no_reason.exit_code != 0 and "--reason" in no_reason.stderr
    ok = cli("campaigns", "schedule", campaign_id, "--at", when, "--override-blackout",
             "--reason", "Disaster declaration for Cass County", "--by", "chief", "--json")
    assert ok.exit_code == 0, ok.stderr
    data = ok.json()
    assert data["status"] == "scheduled"
    assert data["blackout_override_by"] == "chief"
    assert data["blackout_override_reason"] == "Disaster declaration for Cass County"
    log = cli("campaigns", "show", campaign_id, "--json").json()["log"]
    assert any("overridden: Disaster declaration" in (e["reason"] or "") for e in log)


def test_show_has_the_log_and_edit_returns_to_draft(cli, release_id, settings):
    campaign_id = approved(cli, release_id)
    cli("campaigns", "schedule", campaign_id, "--at", next_local_noon(settings).isoformat())
    edited = cli("campaigns", "edit", campaign_id, "--subject", "Corrected headline",
                 "--by", "alice", "--json")
    assert edited.exit_code == 0, edited.stderr
    assert edited.json()["status"] == "draft" and edited.json()["approved_by"] is None
    shown = cli("campaigns", "show", campaign_id, "--json").json()
    assert [(e["from"], e["to"]) for e in shown["log"]] == [
        (None, "draft"), ("draft", "approved"), ("approved", "scheduled"), ("scheduled", "draft")]
    assert shown["log"][0]["reason"] == "created"
    human = cli("campaigns", "show", campaign_id)
    assert "scheduled → draft by alice" in human.stdout


def test_list_and_cancel(cli, release_id):
    first = created(cli, release_id)["id"]
    second = approved(cli, release_id)
    cancelled = cli("campaigns", "cancel", first, "--reason", "duplicate", "--json")
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["status_reason"] == "duplicate"
    listed = cli("campaigns", "list", "--json").json()
    assert [c["id"] for c in listed] == [second, first]
    only = cli("campaigns", "list", "--status", "approved", "--json").json()
    assert [c["id"] for c in only] == [second]


def test_now_starts_the_send(cli, release_id):
    campaign_id = approved(cli, release_id)
    result = cli("campaigns", "schedule", campaign_id, "--now", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["status"] == "sending" and result.json()["recipients"] == 2
    log = cli("campaigns", "show", campaign_id, "--json").json()["log"]
    assert [(e["from"], e["to"]) for e in log] == [
        (None, "draft"), ("draft", "approved"), ("approved", "sending")]


def test_schedule_list_shows_office_time(cli, release_id, settings):
    campaign_id = approved(cli, release_id)
    local = next_local_noon(settings)
    cli("campaigns", "schedule", campaign_id, "--at", local.isoformat())
    cli("digests", "create", "--frequency", "weekly", "--at", "Fri 16:00")
    items = cli("schedule", "list", "--json").json()
    kinds = {item["kind"]: item for item in items}
    assert kinds["campaign"]["id"] == campaign_id
    assert kinds["campaign"]["at"] == local.replace(tzinfo=settings.zone).isoformat()
    assert kinds["digest"]["at_local"].split()[1] == "16:00"
    assert [i["at"] for i in items] == sorted(i["at"] for i in items)
    human = cli("schedule", "list")
    assert f"{local:%Y-%m-%d} 12:00" in human.stdout


def test_now_inside_quiet_hours_is_refused_and_nothing_starts(
        cli, release_id, settings, monkeypatch):
    local = utcnow().astimezone(settings.zone)
    monkeypatch.setenv("MAILER_QUIET_HOURS", f"{(local - timedelta(hours=1)):%H:%M}-"
                                             f"{(local + timedelta(hours=1)):%H:%M}")
    from mailer.cli import context

    context.reset()
    campaign_id = approved(cli, release_id)
    result = cli("campaigns", "schedule", campaign_id, "--now", "--json")
    assert result.exit_code != 0 and result.stdout == ""
    assert "quiet hours" in result.stderr and "next allowed time" in result.stderr
    shown = cli("campaigns", "show", campaign_id, "--json").json()
    assert (shown["status"], shown["recipients"]) == ("approved", None)


def test_now_that_cannot_start_says_why_and_changes_nothing(cli, release_id, db):
    campaign_id = approved(cli, release_id)
    with db.session() as session:  # its audience can no longer be evaluated
        from mailer.campaigns.service import get_campaign

        get_campaign(session, campaign_id).query = "county = "
    result = cli("campaigns", "schedule", campaign_id, "--now")
    assert result.exit_code != 0 and "position" in result.stderr  # the query error, one line
    assert "Traceback" not in result.stderr
    assert cli("campaigns", "show", campaign_id, "--json").json()["status"] == "approved"


def test_missed_reason_is_shown_by_campaigns_status(cli, db, settings):
    from mailer.scheduling.scheduler import reconcile
    from tests.campaigns.factory import add_campaign

    with db.session() as session:
        campaign = add_campaign(session, status="scheduled", approved_by="bob",
                                scheduled_at=utcnow() - timedelta(hours=8))
    reconcile(db, settings)
    status = cli("campaigns", "status", campaign.id, "--json").json()
    assert status["status"] == "missed"
    assert "MAILER_MISFIRE_GRACE" in status["status_reason"]
    assert "missed: scheduled for" in cli("campaigns", "status", campaign.id).stdout


def test_now_in_blackout_needs_a_recorded_override(cli, release_id, settings, monkeypatch):
    election = (utcnow().astimezone(settings.zone) + timedelta(days=5)).date()
    monkeypatch.setenv("MAILER_ELECTION_DATES", election.isoformat())
    from mailer.cli import context

    context.reset()
    campaign_id = approved(cli, release_id)
    refused = cli("campaigns", "schedule", campaign_id, "--now")
    assert refused.exit_code != 0 and "election blackout" in refused.stderr
    ok = cli("campaigns", "schedule", campaign_id, "--now", "--override-blackout", "--reason",
             "Evacuation order", "--by", "chief", "--json")
    assert ok.exit_code == 0, ok.stderr
    assert (ok.json()["status"], ok.json()["blackout_override_reason"]) == (
        "sending", "Evacuation order")


def test_duplicate_makes_a_fresh_draft_of_the_same_campaign(cli, release_id):
    original = approved(cli, release_id)
    copy = cli("campaigns", "duplicate", original, "--by", "carol", "--json")
    assert copy.exit_code == 0, copy.stderr
    data = copy.json()
    assert data["id"] != original and data["status"] == "draft"
    assert data["created_by"] == "carol" and data["approved_by"] is None
    source = cli("campaigns", "show", original, "--json").json()
    assert {k: data[k] for k in ("release_id", "query", "template", "subject")} == \
        {k: source[k] for k in ("release_id", "query", "template", "subject")}
    log = cli("campaigns", "show", data["id"], "--json").json()["log"]
    assert [e["reason"] for e in log] == [f"created as a copy of campaign {original}"]
    assert source["status"] == "approved"  # the original is untouched
    missing = cli("campaigns", "duplicate", 999)
    assert missing.exit_code == 1 and "999" in missing.stderr
