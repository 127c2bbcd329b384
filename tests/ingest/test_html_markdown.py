"""Release web pages (article extraction, sanitizing) and Markdown with front matter."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from mailer.errors import IngestError
from mailer.ingest.fragments import sanitize_html
from mailer.ingest.html import parse_html
from mailer.ingest.markdown import parse_markdown

ZONE = ZoneInfo("America/Chicago")

PAGE = """<!DOCTYPE html>
<html><head><title>Heitkamp Leads Training | Senator Heidi Heitkamp</title>
<meta property="og:url" content="https://www.heitkamp.senate.gov/news/training">
<script>document.write("tracking")</script><style>p {color: red}</style></head>
<body>
<header class="site-header"><nav><a href="/">Home</a> <a href="/news">Press Releases</a></nav>
<h2>Senator Heidi Heitkamp</h2></header>
<div class="breadcrumbs">Home › Press Releases</div>
<main><article>
  <span class="section">Press Releases</span>
  <time datetime="2014-05-09T21:30:00-05:00">May 09 2014</time>
  <h1>Heitkamp Leads Training in Fargo on Identifying &amp; Reporting Human Trafficking</h1>
  <h2>Senator Continues Efforts to Combat Issue</h2>
  <div class="share-tools"><a href="#">Tweet this</a> <a href="#">Email</a></div>
  <p><strong>FARGO, N.D.</strong> – Continuing her efforts since last fall to combat
     <a href="/issues/human-trafficking">human trafficking</a>, Senator Heitkamp today
     joined officials.</p>
  <p onclick="steal()">“In order to diminish the threat,” said Heitkamp.
     <a href="javascript:alert(1)">click</a> <img src="x" onerror="alert(1)"></p>
  <ul><li>Businesses</li><li>Schools</li></ul>
  <iframe src="https://evil.example/"></iframe>
  <form action="/subscribe"><input name="email"><button>Sign up</button></form>
  <p>###</p>
  <p>Contact Senator Heitkamp's press office at press@heitkamp.senate.gov</p>
</article>
<aside class="related">Related: Heitkamp Votes on Farm Bill</aside></main>
<footer>Privacy Policy | Contact | 516 Hart Senate Office Building</footer>
</body></html>"""


def test_article_is_extracted_without_page_chrome():
    release = parse_html(PAGE, "page.html", base_url="https://www.heitkamp.senate.gov/x",
                         zone=ZONE)
    assert release.title == ("Heitkamp Leads Training in Fargo on Identifying & Reporting "
                             "Human Trafficking")
    assert release.subtitle == "Senator Continues Efforts to Combat Issue"
    assert release.date == date(2014, 5, 9)  # 21:30 Central is still May 9 in the office
    assert release.dateline == "FARGO, N.D."
    assert release.paragraphs == [
        "Continuing her efforts since last fall to combat human trafficking, Senator "
        "Heitkamp today joined officials.",
        "“In order to diminish the threat,” said Heitkamp. click",
        "• Businesses", "• Schools",
    ]
    assert release.contact == ("Contact Senator Heitkamp's press office at "
                               "press@heitkamp.senate.gov")
    assert release.link == release.guid == "https://www.heitkamp.senate.gov/news/training"
    text = " ".join(release.paragraphs)
    for chrome in ("Home", "Tweet", "Related", "Privacy", "Sign up", "tracking", "color"):
        assert chrome not in text


def test_html_copy_is_sanitized_for_email():
    release = parse_html(PAGE, "page.html", base_url="https://www.heitkamp.senate.gov/x",
                         zone=ZONE)
    body = release.body_html
    assert body.startswith("<p>Continuing her efforts")  # dateline cut here too
    assert ('<a href="https://www.heitkamp.senate.gov/issues/human-trafficking" '
            'rel="noopener noreferrer">human trafficking</a>') in body
    for unsafe in ("onclick", "javascript:", "<img", "onerror", "<iframe", "<form", "<script",
                   "###"):
        assert unsafe not in body
    assert "<ul><li>Businesses</li><li>Schools</li></ul>" in body


def test_sanitize_drops_relative_links_without_base_and_unsafe_schemes():
    html = ('<p>a <a href="/x">rel</a> <a href="data:text/html,hi">data</a> '
            '<a href="mailto:p@x.gov">mail</a><script>bad()</script></p>')
    assert sanitize_html(html) == ('<p>a <a rel="noopener noreferrer">rel</a> '
                                   '<a rel="noopener noreferrer">data</a> '
                                   '<a href="mailto:p@x.gov" rel="noopener noreferrer">mail</a>'
                                   '</p>')


def test_date_written_above_the_article():
    page = """<html><body><article><h1>Smith Backs Farmers</h1>
    <p class="meta">Posted on Tuesday, November 4, 2025</p>
    <p>Senator Smith today stood with farmers in the Red River Valley.</p></article>
    </body></html>"""
    release = parse_html(page, "p.html", zone=ZONE)
    assert release.date == date(2025, 11, 4)
    assert release.paragraphs == ["Senator Smith today stood with farmers in the Red River "
                                  "Valley."]


def test_page_without_article_element_uses_the_densest_block_and_meta_date():
    page = """<html><head><meta name="date" content="2025-11-03">
    <meta property="og:title" content="Smith Backs Rural Broadband"></head><body>
    <div id="menu"><p>Home</p><p>About</p></div>
    <div class="wrapper"><div class="col">
      <p>WASHINGTON -- Senator Smith today backed a plan to bring broadband to every farm in
      the state, with money from the infrastructure law.<br><br>"It is time," Smith said.</p>
    </div></div></body></html>"""
    release = parse_html(page, "p.html", zone=ZONE)
    assert release.title == "Smith Backs Rural Broadband"
    assert release.date == date(2025, 11, 3)
    assert release.dateline == "WASHINGTON"
    assert release.paragraphs[1] == '"It is time," Smith said.'
    assert "Home" not in release.body


@pytest.mark.parametrize("page, reason", [
    ("<html><body><p>text only, no heading at all</p></body></html>", "no headline"),
    ("<html><head><title>T</title></head><body><h1>Headline</h1></body></html>",
     "no article text"),
])
def test_unusable_pages_are_refused(page, reason):
    with pytest.raises(IngestError, match=reason):
        parse_html(page, "p.html", zone=ZONE)


MARKDOWN = """---
title: Smith Introduces the Rural Broadband Act
subtitle: Bill would connect 40,000 homes
date: 2025-11-03
topics: [human-trafficking]
link: https://smith.senate.gov/news/broadband
---
WASHINGTON — Senator Smith today introduced the **Rural Broadband Act**, see
[the bill](https://congress.gov/bill/1).

<script>alert(1)</script>

- cooperatives
- counties

###

Contact: press@smith.senate.gov
"""


def test_markdown_front_matter_and_body():
    release = parse_markdown(MARKDOWN, "r.md")
    assert release.title == "Smith Introduces the Rural Broadband Act"
    assert release.subtitle == "Bill would connect 40,000 homes"
    assert release.date == date(2025, 11, 3)
    assert release.topics == ["human-trafficking"]
    assert release.dateline == "WASHINGTON"
    assert release.link == release.guid == "https://smith.senate.gov/news/broadband"
    assert release.paragraphs[0] == ("Senator Smith today introduced the Rural Broadband Act, "
                                     "see the bill.")
    assert release.paragraphs[-2:] == ["• cooperatives", "• counties"]
    assert release.contact == "Contact: press@smith.senate.gov"
    assert "<strong>Rural Broadband Act</strong>" in release.body_html
    assert "script" not in release.body_html and "alert" not in release.body
    assert release.body_html.startswith("<p>Senator Smith")


def test_markdown_without_front_matter_takes_the_heading():
    release = parse_markdown("# A Headline\n\nSome body text.\n", "r.md")
    assert release.title == "A Headline" and release.paragraphs == ["Some body text."]


@pytest.mark.parametrize("text, reason", [
    ("---\ntitle: [unclosed\n---\nbody\n", "not valid YAML"),
    ("---\n- a list\n---\nbody\n", "key: value"),
    ("---\ntitle: T\ndate: someday\n---\nbody\n", "not a date"),
    ("---\nsubtitle: S\n---\nbody without title\n", "no title"),
    ("---\ntitle: T\n---\n", "no body"),
])
def test_bad_markdown_is_refused(text, reason):
    with pytest.raises(IngestError, match=reason):
        parse_markdown(text, "r.md")


def test_a_site_logo_h1_is_not_the_headline():
    logo = """<html><head><meta property="og:title" content="Smith Backs Farmers | Senator Smith">
    </head><body><header><h1 class="logo">Senator Smith</h1></header>
    <div class="content"><p>WASHINGTON – Senator Smith today stood with farmers in the
    Red River Valley to press for disaster aid.</p></div></body></html>"""
    assert parse_html(logo, "p.html", zone=ZONE).title == "Smith Backs Farmers"
    heading = """<html><body><header><h1>Senator Smith</h1></header><main>
    <h2>Smith Backs Farmers</h2><p>Senator Smith today stood with farmers.</p></main>
    </body></html>"""
    release = parse_html(heading, "p.html", zone=ZONE)
    assert (release.title, release.subtitle) == ("Smith Backs Farmers", None)


def test_a_body_wrapper_whose_class_sounds_like_chrome_is_kept():
    page = """<html><body><nav>Menu</nav><article><h1>Smith Backs Farmers</h1>
    <div class="entry-content share-enabled"><p>Senator Smith today stood with farmers in
    the Red River Valley.</p><p>She asked for disaster aid.</p></div>
    <div class="share-bar"><p>Share on Facebook</p></div></article></body></html>"""
    release = parse_html(page, "p.html", zone=ZONE)
    assert release.paragraphs == ["Senator Smith today stood with farmers in the Red River "
                                  "Valley.", "She asked for disaster aid."]
