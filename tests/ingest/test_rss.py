"""The three real office feeds (with all their warts) and hand-made RSS/Atom edge cases."""

from __future__ import annotations

import re
from datetime import date
from zoneinfo import ZoneInfo

import pytest

from mailer.errors import IngestError
from mailer.ingest.rss import parse_feed
from tests.conftest import FEEDS_DIR

ZONE = ZoneInfo("America/Chicago")
ENTITY = re.compile(r"&(?:[a-z]+|#\d+|#x[0-9a-f]+);", re.I)


def _feed(name: str):
    return parse_feed((FEEDS_DIR / name).read_bytes(), name, zone=ZONE)


@pytest.mark.parametrize("name, count, dated", [
    ("culberson_rss.xml", 10, False), ("richard_burr.xml", 25, True), ("ruiz_rss.xml", 10, True),
])
def test_fixture_feeds_import_every_item_clean(name, count, dated):
    feed = _feed(name)
    assert len(feed.items) == count and feed.skipped == 0
    for item in feed.items:
        assert item.title and item.title == item.title.strip() and "  " not in item.title
        assert item.link.startswith("http://") and " " not in item.link
        assert item.guid
        for text in [item.title, *item.paragraphs]:
            assert not ENTITY.search(text), text  # entities decoded, double-escaped too
            assert "\u00a0" not in text and "###" not in text
        assert (item.date is not None) == dated
    assert len({item.guid for item in feed.items}) == count


def test_burr_relative_links_resolve_against_the_channel_link():
    first = _feed("richard_burr.xml").items[0]
    assert first.link == ("http://www.burr.senate.gov/public/index.cfm?FuseAction=PressOffice."
                          "PressReleases&Type=Press%20Release&ContentRecord_id="
                          "65dbea38-d64c-6208-ef8f-2b000e899b3a")
    assert first.title == ("Senator Burr Congratulates Rep. Mel Watt On His Nomination As "
                           "FHFA Director")
    # "Thu, 02 May 2013 11:27:00 EST" is 10:27 in Chicago: still May 2
    assert first.date == date(2013, 5, 2)
    assert first.paragraphs == []  # the feed carries titles only


def test_burr_trailing_spaces_in_titles_are_trimmed():
    titles = [item.title for item in _feed("richard_burr.xml").items]
    assert "Sanders, Burr Propose Legislation for Homeless Veterans" in titles


def test_ruiz_unparseable_dates_double_escaped_entities_and_datelines():
    items = _feed("ruiz_rss.xml").items
    first = items[0]
    assert first.date == date(2013, 4, 15)  # "Monday, April 15, 2013 - 2:23pm"
    assert first.dateline == "Washington, DC"
    assert first.paragraphs[0].startswith("Last Friday marked the first 100 days in Congress")
    assert items[-1].title == "Rep. Ruiz Statement on the President’s State of the Union Address"
    statement = items[1]
    assert "President’s budget" in statement.body and "“I was disappointed" in statement.body
    vawa = next(i for i in items if "Passing Violence Against Women" in i.title)
    # "February 28, 2013WASHINGTON, DC&nbsp;--- U.S. Representative…"
    assert vawa.dateline == "WASHINGTON, DC"
    assert vawa.paragraphs[0].startswith("U.S. Representative Raul Ruiz")
    # the end mark separates the release from the floor statement that follows it
    assert any(p.startswith("STATEMENT OF THE HONORABLE") for p in vawa.paragraphs)


def test_ruiz_glued_paragraphs_are_separated():
    selectusa = next(i for i in _feed("ruiz_rss.xml").items if "SelectUSA" in i.title)
    assert selectusa.paragraphs[1].startswith("“America should be the premier place")
    assert selectusa.paragraphs[2].startswith("The SelectUSA initiative is the first")


def test_culberson_undated_items_and_blank_descriptions_are_kept():
    items = _feed("culberson_rss.xml").items
    assert all(item.date is None for item in items)
    assert items[1].title == "President Obama’s Budget: More of the Same Failed Policies"
    blank = next(i for i in items if i.title.startswith("Rep. Culberson Discusses"))
    assert blank.paragraphs == []
    assert items[1].paragraphs[0] == "The President’s Budget By The Numbers"


ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Office of Senator Smith</title>
<link href="https://smith.senate.gov/"/><id>urn:smith</id><updated>2025-11-03T00:00:00Z</updated>
<entry><title type="html">Smith &amp;amp; Jones Act</title><id>urn:smith:1</id>
<link href="/news/1"/><updated>2025-11-04T03:00:00Z</updated>
<content type="html">&lt;p&gt;BISMARCK, N.D. &#8211; Senator Smith today praised the
bill that passed the Senate unanimously.&lt;/p&gt;&lt;p&gt;More text.&lt;/p&gt;</content></entry>
<entry><title></title><id>urn:smith:2</id><content type="text"></content></entry>
</feed>"""


def test_atom_entries_with_html_content():
    feed = parse_feed(ATOM, "atom.xml", zone=ZONE)
    assert feed.title == "Office of Senator Smith" and feed.link == "https://smith.senate.gov/"
    assert len(feed.items) == 1 and feed.skipped == 1  # an entry with no title and no text
    item = feed.items[0]
    assert item.title == "Smith & Jones Act"
    assert item.link == "https://smith.senate.gov/news/1" and item.guid == "urn:smith:1"
    assert item.date == date(2025, 11, 3)  # 03:00 UTC is the evening before in Chicago
    assert item.dateline == "BISMARCK, N.D."
    assert item.paragraphs == ["Senator Smith today praised the bill that passed the Senate "
                               "unanimously.", "More text."]


@pytest.mark.parametrize("data", [
    b"this is not a feed at all",
    b"<html><body><p>a web page</p></body></html>",
    b"<?xml version='1.0'?><root><child/></root>",
])
def test_non_feeds_are_refused(data):
    with pytest.raises(IngestError, match="not an RSS or Atom feed"):
        parse_feed(data, "x.xml", zone=ZONE)


def test_a_feed_cut_off_mid_download_is_refused_but_small_slips_are_not():
    whole = (FEEDS_DIR / "ruiz_rss.xml").read_bytes()
    with pytest.raises(IngestError, match=r"ruiz.xml: the feed is cut off \(no element found"):
        parse_feed(whole[:5000], "ruiz.xml", zone=ZONE)
    sloppy = (b"<rss version='2.0'><channel><title>T</title><item><title>A &nbsp; B</title>"
              b"<link>https://x.gov/1</link></item></channel></rss>")
    assert [i.title for i in parse_feed(sloppy, "s.xml", zone=ZONE).items] == ["A B"]


def test_html_descriptions_keep_a_sanitized_copy_without_dateline_end_mark_or_contact():
    rss = b"""<rss version="2.0"><channel><title>T</title><link>https://x.gov/news/</link>
    <item><title>A</title><link>a</link><description>&lt;p&gt;&lt;b&gt;FARGO, N.D.&lt;/b&gt;
    &amp;ndash; Senator Smith toured the new shelter in Fargo &lt;a href="more"
    onclick="x()"&gt;today&lt;/a&gt;.&lt;/p&gt;&lt;script&gt;bad()&lt;/script&gt;
    &lt;p&gt;###&lt;/p&gt;&lt;p&gt;Contact: press@smith.senate.gov&lt;/p&gt;</description>
    </item></channel></rss>"""
    [item] = parse_feed(rss, "f.xml", zone=ZONE).items
    assert item.link == "https://x.gov/news/a"
    assert item.dateline == "FARGO, N.D."
    assert item.paragraphs == ["Senator Smith toured the new shelter in Fargo today."]
    assert item.contact == "press@smith.senate.gov"
    assert item.body_html == ('<p>Senator Smith toured the new shelter in Fargo <a '
                              'href="https://x.gov/news/more" rel="noopener noreferrer">today'
                              '</a>.</p>')


def test_bare_guids_are_qualified_by_the_channel_so_feeds_never_collide():
    def feed(channel: str) -> bytes:
        return (f"<rss version='2.0'><channel><title>T</title><link>{channel}</link><item>"
                f"<title>Item</title><guid isPermaLink='false'>1</guid></item></channel></rss>"
                ).encode()

    [a] = parse_feed(feed("https://a.senate.gov/"), "a.xml", zone=ZONE).items
    [b] = parse_feed(feed("https://b.house.gov/"), "b.xml", zone=ZONE).items
    assert (a.guid, b.guid) == ("https://a.senate.gov/#1", "https://b.house.gov/#1")
    assert _feed("ruiz_rss.xml").items[0].guid.startswith("http://ruiz.house.gov/%3Ca")
