"""A campaign's own preheader (the hidden inbox preview line) and intro note (plain text above
the release, paragraphs kept, escaped), on every face that creates or edits a campaign."""

from __future__ import annotations

import re

import pytest

from mailer.campaigns.content import compile_for, web_view
from mailer.campaigns.models import Campaign

from .factory import add_campaign, add_release

INTRO = "A note from the office: <script>alert(1)</script>\n\nSee you at the town hall."
PREHEADER = "Training in Fargo this Friday & how to report trafficking"
#: The standard hidden preheader: first thing in the body, display:none.
PREHEADER_DIV = re.compile(r'<body[^>]*>\s*<div class="preheader" style="([^"]*)">([^<]*)')


def _campaign(db, **fields) -> int:
    with db.session() as session:
        return add_campaign(session, add_release(session), **fields).id


def _compiled(db, campaign_id, settings):
    with db.session() as session:
        return compile_for(session, session.get(Campaign, campaign_id), settings)


def test_the_preheader_is_the_hidden_span_at_the_top_and_the_intro_is_escaped(db, settings):
    message = _compiled(db, _campaign(db, preheader=PREHEADER, intro=INTRO), settings)
    found = PREHEADER_DIV.search(message.html)
    assert found and "display: none" in found.group(1).replace("display:none", "display: none")
    assert found.group(2).startswith("Training in Fargo this Friday &amp; how to report")
    assert "<script>" not in message.html
    assert "A note from the office: &lt;script&gt;alert(1)&lt;/script&gt;</p>" in message.html
    # Two paragraphs, both above the release's title.
    intro_at = message.html.index("A note from the office")
    assert message.html.index("See you at the town hall.</p>") < message.html.index("<h1")
    assert intro_at < message.html.index("<h1")


def test_the_text_part_has_the_intro_above_the_release(db, settings):
    text = _compiled(db, _campaign(db, intro=INTRO), settings).text
    assert "A note from the office: <script>alert(1)</script>\n\nSee you at the town hall." in text
    assert text.index("See you at the town hall.") < text.index("PRESS RELEASE")


def test_without_them_the_release_gives_the_preview_line_and_no_note(db, settings):
    message = _compiled(db, _campaign(db), settings)
    found = PREHEADER_DIV.search(message.html)
    # The seed release's subtitle.
    assert found and found.group(2).startswith("Senator Continues Efforts")
    assert 'class="intro"' not in message.html


def test_the_archive_shows_the_intro_too(db, settings):
    campaign_id = _campaign(db, intro="Thanks for following our work.")
    with db.session() as session:
        page = web_view(session, session.get(Campaign, campaign_id), settings)
    assert "Thanks for following our work.</p>" in page


@pytest.fixture
def release_id(db):
    with db.session() as session:
        return add_release(session).id


def test_the_cli_sets_them_and_refuses_a_long_preheader(cli, release_id):
    created = cli("campaigns", "create", "--release", str(release_id), "--query",
                  'topic = "x"', "--preheader", PREHEADER, "--intro", INTRO, "--json")
    assert created.exit_code == 0, created.stderr
    data = created.json()
    assert data["preheader"] == PREHEADER and data["intro"] == INTRO
    edited = cli("campaigns", "edit", str(data["id"]), "--preheader", "", "--json")
    assert edited.exit_code == 0, edited.stderr
    assert edited.json()["preheader"] is None and edited.json()["intro"] == INTRO
    long = cli("campaigns", "create", "--release", str(release_id), "--query", 'topic = "x"',
               "--preheader", "x" * 151)
    assert long.exit_code == 2
    assert "the preheader is 151 characters; at most 150" in long.stderr
    assert "Traceback" not in long.stderr
