import email
import email.policy
import json
import threading

from sqlalchemy import select

from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as CS
from mailer.delivery.engine import start_campaign
from mailer.delivery.worker import run_worker
from tests.support.campaigns import add_subscribers, approved_campaign


def test_campaigns_send_with_the_outbox_prints_one_json_summary(cli, db, settings):
    add_subscribers(db, 7)
    campaign_id = approved_campaign(db)
    result = cli("campaigns", "send", campaign_id, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)  # exactly one document
    assert summary["status"] == "sent" and summary["accepted"] == 7
    assert summary["in_doubt_policy"]["evidence"] == "the outbox file"
    files = sorted(settings.outbox_dir.glob("*.eml"))
    assert len(files) == 7 and files[0].name.startswith(f"c{campaign_id}-d")
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["List-Unsubscribe"].startswith("<https://news.senator.example.gov/unsubscribe/")
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    again = cli("campaigns", "send", campaign_id)
    assert again.exit_code != 0 and "already been sent" in again.stderr
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 7


def test_campaigns_send_human_summary_and_unknown_campaign(cli, db):
    add_subscribers(db, 3)
    campaign_id = approved_campaign(db)
    result = cli("campaigns", "send", campaign_id)
    assert result.exit_code == 0
    assert "3 accepted" in result.stdout and "sent" in result.stdout
    missing = cli("campaigns", "send", 999)
    assert missing.exit_code != 0 and missing.stderr.startswith("mailer: error: no campaign")


def test_a_paused_send_exits_non_zero_with_the_reason(cli, db, sg_settings, standin,
                                                       monkeypatch):
    for name, value in {"MAILER_TRANSPORT": "sendgrid", "MAILER_SENDGRID_API_KEY": "SG.wrong",
                        "MAILER_SENDGRID_HOST": standin.url}.items():
        monkeypatch.setenv(name, value)
    from mailer.cli import context
    context.get_settings.cache_clear()
    add_subscribers(db, 3)
    campaign_id = approved_campaign(db)
    result = cli("campaigns", "send", campaign_id, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "paused"
    assert "paused" in result.stderr and "API key" in result.stderr


def test_worker_sends_every_campaign_that_is_sending(db, sg_settings, standin):
    add_subscribers(db, 25)
    first, second = approved_campaign(db, subject="One"), approved_campaign(db, subject="Two")
    start_campaign(db, sg_settings, first)
    start_campaign(db, sg_settings, second)
    accepted = run_worker(db, sg_settings, threading.Event(), poll_interval=0.05,
                          max_idle_polls=2)
    assert accepted == 50
    with db.session() as session:
        statuses = session.scalars(select(Campaign.status).order_by(Campaign.id)).all()
    assert statuses == [CS.SENT, CS.SENT]
    assert max(standin.delivery_counts().values()) == 1


def test_campaigns_status_states_the_in_doubt_policy(cli, db, monkeypatch):
    monkeypatch.setenv("MAILER_IN_DOUBT_POLICY", "hold")
    from mailer.cli import context
    context.get_settings.cache_clear()
    add_subscribers(db, 2)
    campaign_id = approved_campaign(db)
    data = cli("campaigns", "status", campaign_id, "--json").json()
    assert data["in_doubt_policy"] == {"policy": "hold", "grace_seconds": 600,
                                       "evidence": "the outbox file"}


def test_progress_bar_on_a_terminal_and_clean_json_otherwise(cli, db, monkeypatch):
    from mailer.cli import context

    add_subscribers(db, 4)
    campaign_id = approved_campaign(db)
    monkeypatch.setattr(context, "show_progress", lambda: True)
    result = cli("campaigns", "send", campaign_id)
    assert result.exit_code == 0
    assert "sending" in result.stderr and "4/4" in result.stderr
    assert "4 accepted" in result.stdout
