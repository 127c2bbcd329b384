"""Properties every parser and the deduplicator keep, whatever the input."""

from __future__ import annotations

from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer.errors import IngestError
from mailer.ingest.dedupe import content_hash
from mailer.ingest.html import parse_html
from mailer.ingest.markdown import parse_markdown
from mailer.ingest.parsed import ParsedRelease
from mailer.ingest.rss import parse_feed

PIECES = st.sampled_from([
    "<p>", "</p>", "<h1>", "</h1>", "<article>", "</article>", "<br>", "<script>", "&amp;",
    "&nbsp;", "###", "—", "FARGO, N.D. – ", "May 09 2014", "\n", "\n\n", "---\n", "title: x\n",
    "<rss version='2.0'><channel>", "<item><title>", "</title></item>", "<![CDATA[", "]]>",
    "Senator", "text ", "\x00", "\ufeff", "<time datetime='2025-02-30'>", "#", "- ",
])
MESS = st.lists(PIECES | st.text(max_size=20), max_size=60).map("".join)
LENIENT = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@LENIENT
@given(MESS)
def test_html_parser_fails_only_with_ingest_error(text):
    try:
        release = parse_html(text, "p.html")
    except IngestError:
        return
    assert release.title and release.paragraphs
    assert "<script" not in (release.body_html or "")


@LENIENT
@given(MESS)
def test_markdown_parser_fails_only_with_ingest_error(text):
    try:
        release = parse_markdown(text, "r.md")
    except IngestError:
        return
    assert release.title and release.paragraphs


@LENIENT
@given(MESS)
def test_feed_parser_fails_only_with_ingest_error(text):
    try:
        feed = parse_feed(text.encode("utf-8", "replace"), "f.xml")
    except IngestError:
        return
    assert all(item.title == item.title.strip() and item.title for item in feed.items)


WORDS = st.lists(st.sampled_from(["Senator", "today", "trafficking", "Fargo", "“quoted”",
                                  "it’s", "it's", "N.D.", "–", "grants"]), min_size=1)


@settings(max_examples=100, deadline=None)
@given(WORDS, WORDS, st.sampled_from([" ", "  ", "\u00a0", " \n "]))
def test_content_hash_ignores_case_spacing_and_punctuation_only(title, body, gap):
    one = ParsedRelease(title=" ".join(title), source="a", paragraphs=[" ".join(body)],
                        date=date(2025, 11, 3))
    two = ParsedRelease(title=gap.join(title).upper(), source="b",
                        paragraphs=[gap.join(w.replace("’", "'") for w in body)],
                        date=date(2025, 11, 3))
    assert content_hash(one) == content_hash(two)
    three = ParsedRelease(title=one.title, source="a", paragraphs=one.paragraphs,
                          date=date(2025, 11, 4))
    assert content_hash(three) != content_hash(one)
