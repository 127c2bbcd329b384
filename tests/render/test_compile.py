"""Compiling campaigns: the seed release in the office layout, footer, size, safety."""

from __future__ import annotations

import html as html_module
import re

import pytest

from mailer.campaigns.content import compile_for, web_view
from mailer.campaigns.models import Campaign
from mailer.errors import InvalidInput, TemplateError
from mailer.ingest.models import Release
from mailer.render import (
    GMAIL_CLIP_BYTES,
    Personalizer,
    compile_campaign,
    compile_digest,
    personalize,
)
from mailer.render.placeholders import PLACEHOLDER_RE
from mailer.render.sample import sample_releases

from .factory import add_campaign, add_release

SCRIPT = "<script>alert(1)</script>"
ADDRESS = "123 Hart Senate Office Building, Washington, DC 20510"


def _compiled(db, campaign_id, settings):
    with db.session() as session:
        return compile_for(session, session.get(Campaign, campaign_id), settings)


def _personal(db, campaign_id, settings, signer, name=SCRIPT):
    message = _compiled(db, campaign_id, settings)
    recipient = Personalizer(settings, signer, campaign_id).recipient(
        email="jane@example.com", name=name, subscriber_id=11)
    return message, personalize(message, recipient)


def test_seed_release_compiles_once_with_placeholders(db, settings, seed_campaign_id):
    message = _compiled(db, seed_campaign_id, settings)
    assert message.subject == ("Heitkamp Leads Training in Fargo on Identifying & Reporting "
                               "Human Trafficking")
    assert message.campaign_id == seed_campaign_id
    assert message.categories == (f"campaign-{seed_campaign_id}",)
    assert message.headers == {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    assert message.from_email == settings.from_email
    for key in ("-unsub_h-", "-prefs_h-", "-email_h-", "-name_h-"):
        assert key in message.html
    for key in ("-unsub_t-", "-prefs_t-", "-email_t-", "-name_t-"):
        assert key in message.text
    # HTML keys only in HTML, text keys only in text: SendGrid substitutes both everywhere.
    assert "_t-" not in "".join(PLACEHOLDER_RE.findall(message.html))
    assert "_h-" not in "".join(PLACEHOLDER_RE.findall(message.text))


def test_styles_are_inlined_and_only_media_queries_stay(db, settings, seed_campaign_id):
    html = _compiled(db, seed_campaign_id, settings).html
    styles = re.findall(r"<style[^>]*>(.*?)</style>", html, re.S)
    assert len(styles) == 1 and styles[0].strip().startswith("@media")
    assert re.search(r'<td class="content" style="[^"]*font-family: Georgia', html)
    assert re.search(r'<h1 style="[^"]*color: #13294b', html)
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert 'name="viewport"' in html
    assert 'width="600"' in html and "max-width: 600px" in html
    assert len(html.encode()) < GMAIL_CLIP_BYTES


def test_layout_has_headline_dateline_quotes_and_contact(db, settings, seed_campaign_id):
    html = _compiled(db, seed_campaign_id, settings).html
    text = html_module.unescape(html)
    assert "Office of the Senator</td>" in html
    assert "<h1" in html and "Heitkamp Leads Training in Fargo" in text
    assert "Senator Continues Efforts to Combat Issue" in text
    dateline = re.search(r'<span class="dateline" style="([^"]*)">Fargo, N\.D\.</span>', html)
    assert dateline and "small-caps" in dateline.group(1) and "bold" in dateline.group(1)
    # The dateline is not printed twice.
    assert "FARGO, N.D." not in html
    quotes = re.findall(r'<p class="quote"[^>]*>(.*?)</p>', html, re.S)
    assert len(quotes) == 1 and html_module.unescape(quotes[0]).startswith("“In order to")
    assert "press@heitkamp.senate.gov" in html
    assert ">Read on the web</a>" in html


def test_every_email_has_full_footer_in_both_parts(db, settings, signer, seed_campaign_id):
    _, out = _personal(db, seed_campaign_id, settings, signer)
    web = f"https://news.senator.example.gov/archive/{seed_campaign_id}"
    for part in (html_module.unescape(out.html), out.text):
        assert ADDRESS in part
        assert "https://news.senator.example.gov/unsubscribe/" in part
        assert "https://news.senator.example.gov/preferences/" in part
        assert web in part
    assert re.search(r'<a href="https://news\.senator\.example\.gov/unsubscribe/[^"]+"[^>]*>'
                     r"Unsubscribe</a>", out.html)
    assert out.headers["List-Unsubscribe"].startswith(
        "<https://news.senator.example.gov/unsubscribe/")
    assert out.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert not PLACEHOLDER_RE.search(out.html + out.text + out.subject)


def test_subscriber_name_is_text_in_html_and_verbatim_in_text(db, settings, signer,
                                                                seed_campaign_id):
    _, out = _personal(db, seed_campaign_id, settings, signer)
    assert SCRIPT not in out.html
    assert "Dear &lt;script&gt;alert(1)&lt;/script&gt;," in out.html
    assert f"Dear {SCRIPT}," in out.text


def test_release_content_is_escaped_and_cannot_inject(db, settings, signer):
    with db.session() as session:
        release = add_release(session, title="Tom & Jerry <b>Act</b>",
                              body="First -unsub_h- paragraph <img src=x onerror=alert(1)>")
        campaign_id = add_campaign(session, release).id
    message, out = _personal(db, campaign_id, settings, signer)
    assert "<b>Act</b>" not in message.html and "&lt;b&gt;Act&lt;/b&gt;" in message.html
    assert "<img" not in message.html
    assert "\u2011unsub_h\u2011" in out.html  # the release's look-alike stays inert


def test_over_gmail_limit_fails_loudly(db, settings):
    body = "\n\n".join("A long paragraph about appropriations. " * 40 for _ in range(80))
    with db.session() as session:
        campaign_id = add_campaign(session, add_release(session, body=body)).id
    with pytest.raises(TemplateError, match=r"press_release\.html renders to .* KB.*102 KB"):
        _compiled(db, campaign_id, settings)


def test_web_view_has_no_personal_data(db, settings, seed_campaign_id):
    with db.session() as session:
        page = web_view(session, session.get(Campaign, seed_campaign_id), settings)
    assert not PLACEHOLDER_RE.search(page)
    assert "/unsubscribe/" not in page and "/preferences/" not in page
    assert "Dear" not in page
    assert "https://news.senator.example.gov/subscribe" in page
    assert ADDRESS in html_module.unescape(page)


def test_digest_lists_each_release_with_summary_and_link(settings, signer):
    message = compile_digest(sample_releases(), settings, subject="This week from the Senator",
                             campaign_id=4)
    text = html_module.unescape(message.html)
    plain = " ".join(message.text.split())
    for release in sample_releases():
        assert release.title in text and release.title in plain
    assert "https://news.senator.example.gov/archive/4#release-2" in message.html
    assert "https://www.heitkamp.senate.gov/public/index.cfm/2014/5/farm-bill" in message.text
    assert "Twelve rural cooperatives will share $8 million" in plain
    out = personalize(message, Personalizer(settings, signer, 4).recipient(
        email="a@example.com", name="Ann", subscriber_id=2))
    assert "/unsubscribe/" in out.html and "/unsubscribe/" in out.text
    assert message.categories == ("campaign-4",)


def test_digest_campaign_renders_the_releases_it_was_created_with(db, settings,
                                                                 seed_campaign_id):
    with db.session() as session:
        first = session.get(Campaign, seed_campaign_id).release_id
        second = add_release(session, title="Rural Broadband Grants Announced",
                             body="BISMARCK – Twelve cooperatives share $8 million.").id
        campaign = add_campaign(session, session.get(Release, first), kind="digest",
                                release_id=None, template="digest",
                                subject="Weekly news: 2 new releases",
                                digest_release_ids=[second, first])
        message = compile_for(session, campaign, settings)
        given = compile_campaign(campaign, sample_releases(), settings)
        campaign.digest_release_ids = []
        with pytest.raises(InvalidInput, match="no releases"):
            compile_for(session, campaign, settings)
    text = " ".join(message.text.split())
    assert text.index("Rural Broadband Grants") < text.index("Heitkamp Leads Training")
    assert "<h1" in message.html and "Weekly news: 2 new releases" in message.html
    assert message.categories == (f"campaign-{campaign.id}",)
    assert "Farm Bill Conference Agreement" in given.text


def test_subject_is_one_plain_line(db, settings, seed_campaign_id):
    with db.session() as session:
        campaign = session.get(Campaign, seed_campaign_id)
        campaign.subject = "  Senator's\r\nweekly   update "
        assert compile_for(session, campaign, settings).subject == "Senator's weekly update"
        campaign.subject = "RE: your question about the farm bill"
        with pytest.raises(InvalidInput, match="pretends to be a reply"):
            compile_for(session, campaign, settings)


def test_logo_has_alt_text(db, settings, seed_campaign_id, monkeypatch):
    settings_with_logo = settings.model_copy(update={"logo_url": "https://x.gov/seal.png"})
    html = _compiled(db, seed_campaign_id, settings_with_logo).html
    assert re.search(r'<img[^>]+src="https://x\.gov/seal\.png"[^>]+alt="Seal of Office of '
                     r'the Senator"|<img[^>]+alt="Seal of Office of the Senator"[^>]+src=', html)


def test_html_only_release_is_sanitized(db, settings):
    with db.session() as session:
        release = add_release(session, body="", body_html=(
            '<p>Grants for <b>rural</b> clinics.</p><script>steal()</script>'
            '<p onclick="x()">More <a href="javascript:alert(1)">here</a>.</p>'))
        campaign_id = add_campaign(session, release).id
    message = _compiled(db, campaign_id, settings)
    html = message.html
    assert "Grants for rural clinics.\n\nMore here." in message.text
    assert "<b>rural</b>" in html and "clinics." in html
    assert "<script" not in html and "steal()" not in html
    assert "onclick" not in html and "javascript:" not in html


def test_substitutions_stay_small_for_sendgrid(settings, signer):
    """SendGrid allows 10,000 bytes of substitutions per personalization."""
    recipient = Personalizer(settings, signer, 123456).recipient(
        email="a.very.long.local.part.for.testing@subdomain.example.com",
        name="Maria-Guadalupe Fernández de la Cruz", subscriber_id=10**9)
    size = sum(len(k.encode()) + len(v.encode()) for k, v in recipient.substitutions.items())
    assert size < 1000
    assert all(len(key) <= 9 for key in recipient.substitutions)


def test_only_web_links_reach_an_href(db, settings):
    with db.session() as session:
        release = add_release(session, link="javascript:alert(document.cookie)")
        campaign_id = add_campaign(session, release).id
        page = web_view(session, session.get(Campaign, campaign_id), settings)
    assert "javascript:" not in page


def test_release_campaign_with_a_digest_template_is_refused(db, settings, seed_campaign_id):
    with db.session() as session:
        campaign = session.get(Campaign, seed_campaign_id)
        campaign.template = "digest"
        with pytest.raises(TemplateError, match="template 'digest' is for digest messages"):
            compile_for(session, campaign, settings)


def test_compiling_is_deterministic(db, settings, seed_campaign_id):
    """Workers compile independently; everyone must get the same email."""
    first = _compiled(db, seed_campaign_id, settings)
    second = _compiled(db, seed_campaign_id, settings)
    assert first == second
