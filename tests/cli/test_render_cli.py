"""``mailer templates check``, ``mailer campaigns preview`` and ``mailer campaigns test``."""

from __future__ import annotations

import email
import email.policy
import html as html_module
import re
import shutil

import pytest
from sqlalchemy import func, select

from mailer.campaigns.models import Campaign, CampaignLog
from mailer.cli import context
from mailer.delivery.records import Delivery
from mailer.settings import BUNDLED_TEMPLATES_DIR
from subscribers.models import Subscriber
from tests.render.factory import add_campaign, add_release

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def campaign_id(db) -> int:
    with db.session() as session:
        campaign = add_campaign(session, add_release(session))
        session.add(Subscriber(email="jane@example.com", name=SCRIPT, status="active"))
        return campaign.id


@pytest.fixture
def broken_templates(tmp_path, monkeypatch):
    folder = tmp_path / "tpl"
    shutil.copytree(BUNDLED_TEMPLATES_DIR, folder)
    monkeypatch.setenv("MAILER_TEMPLATES_DIR", str(folder))
    context.reset()
    return folder


def test_check_passes_on_shipped_templates(cli):
    result = cli("templates", "check")
    assert result.exit_code == 0, result.stderr
    assert "are fine" in result.stdout


def test_check_fails_naming_template_line_and_variable(cli, broken_templates):
    path = broken_templates / "digest.html"
    path.write_text(path.read_text().replace("<h1>{{ subject }}</h1>",
                                             "<h1>{{ subject }} {{ weekly_theme }}</h1>"))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1)
                if "weekly_theme" in text)
    result = cli("templates", "check")
    assert result.exit_code != 0
    assert result.stdout.splitlines() == [f"digest.html:{line}: undefined variable "
                                          "'weekly_theme'"]
    assert result.stderr.startswith("mailer: error: digest.html:")
    assert "Traceback" not in result.stderr


def test_check_fails_on_sandbox_escape(cli, broken_templates):
    path = broken_templates / "welcome.txt"
    path.write_text(path.read_text().replace("Recent news:", "{{ ''.__class__.__mro__ }}"))
    result = cli("templates", "check", "--json")
    assert result.exit_code != 0
    data = result.json()
    assert data["ok"] is False
    assert data["problems"][0]["template"] == "welcome.txt"
    assert data["problems"][0]["line"] is not None
    assert "__class__" in data["problems"][0]["message"]


def test_preview_writes_personalized_html_and_prints_text(cli, campaign_id, tmp_path):
    out = tmp_path / "preview.html"
    result = cli("campaigns", "preview", str(campaign_id), "--subscriber", "Jane@Example.com",
                 "--out", str(out))
    assert result.exit_code == 0, result.stderr
    html = out.read_text()
    assert len(html.encode()) < 102 * 1024
    assert re.search(r'<h1 style="[^"]+">', html)  # inlined styles
    assert SCRIPT not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert f"Dear {SCRIPT}," in result.stdout  # the text version, verbatim
    unescaped = html_module.unescape(html)
    for needle in ("123 Hart Senate Office Building", "/unsubscribe/", "/preferences/",
                   f"/archive/{campaign_id}"):
        assert needle in unescaped and needle in result.stdout
    # The links carry a token for this subscriber.
    token = re.search(r"/unsubscribe/([^\"<\s]+)", html).group(1)
    with context.database().session() as session:
        jane = session.scalar(select(Subscriber).where(Subscriber.email == "jane@example.com"))
        assert context.signer().read(token, "unsubscribe") == jane.id


def test_preview_unknown_subscriber_or_campaign_is_an_error(cli, campaign_id, tmp_path):
    result = cli("campaigns", "preview", str(campaign_id), "--subscriber", "nobody@example.com",
                 "--out", str(tmp_path / "x.html"))
    assert result.exit_code != 0 and "no subscriber" in result.stderr
    result = cli("campaigns", "preview", "999")
    assert result.exit_code != 0 and result.stderr.startswith("mailer: error: no campaign")


def test_test_send_goes_through_outbox_without_touching_campaign(cli, campaign_id, settings):
    result = cli("campaigns", "test", str(campaign_id), "--to", "staff@senate.example.gov",
                 "--to", "jane@example.com", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["transport"] == "outbox"
    assert [r["accepted"] for r in data["results"]] == [True, True]
    files = sorted(settings.outbox_dir.glob("*.eml"))
    assert len(files) == 2
    for path in files:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert msg["Subject"].startswith("[TEST] Heitkamp Leads Training")
        assert msg.get_content_type() == "multipart/alternative"
        assert msg["List-Unsubscribe"].startswith("<https://news.senator.example.gov/unsub")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    with context.database().session() as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign.status == "draft"
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
        assert session.scalar(select(func.count()).select_from(CampaignLog)) == 0


def test_test_send_rejects_bad_address(cli, campaign_id, settings):
    result = cli("campaigns", "test", str(campaign_id), "--to", "not-an-address")
    assert result.exit_code != 0
    assert "invalid email address 'not-an-address'" in result.stderr
    assert not settings.outbox_dir.exists() or not list(settings.outbox_dir.glob("*.eml"))


def test_test_send_through_sendgrid_uses_substitutions(cli, campaign_id, monkeypatch):
    from tests.support.sendgrid_standin import SendGridStandIn

    with SendGridStandIn(api_key="SG.k", max_seconds=30) as standin:
        monkeypatch.setenv("MAILER_TRANSPORT", "sendgrid")
        monkeypatch.setenv("MAILER_SENDGRID_API_KEY", "SG.k")
        monkeypatch.setenv("MAILER_SENDGRID_HOST", standin.url)
        context.reset()
        result = cli("campaigns", "test", str(campaign_id), "--to", "jane@example.com")
        accepted = list(standin.accepted)
    assert result.exit_code == 0, result.stderr
    assert "jane@example.com: sent (sendgrid)" in result.stdout
    [row] = accepted
    assert row.custom_args.get("campaign_id") == ""  # a test copy is no part of the campaign
    subs = row.substitutions
    assert subs["-name_h-"] == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert subs["-name_t-"] == SCRIPT
    assert subs["-unsub_t-"].startswith("https://news.senator.example.gov/unsubscribe/")
    assert row.headers["List-Unsubscribe"] == f"<{subs['-unsub_t-']}>"


def test_preview_json_of_a_digest_campaign(cli, campaign_id, tmp_path):
    with context.database().session() as session:
        first = session.get(Campaign, campaign_id)
        digest = Campaign(kind="digest", query="all", template="digest",
                          subject="Weekly news: 2 new releases", created_by="digest",
                          digest_release_ids=[add_release(session, title="Broadband Grants",
                                                          body="BISMARCK – Grants.").id,
                                              first.release_id])
        session.add(digest)
        session.flush()
        digest_id = digest.id
    out = tmp_path / "digest.html"
    result = cli("campaigns", "preview", str(digest_id), "--out", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert set(data) == {"campaign_id", "to", "out", "subject", "html_bytes", "text", "headers"}
    assert data["to"] == "subscriber@example.com" and data["out"] == str(out)
    assert data["html_bytes"] == len(out.read_bytes()) < 102 * 1024
    assert data["subject"] == "Weekly news: 2 new releases"
    assert "1. Broadband Grants" in data["text"] and "2. Heitkamp Leads" in data["text"]
    assert data["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
