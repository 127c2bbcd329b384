"""The plain-text release parser: the seed layout, the wire layouts, and anything at all."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer.errors import IngestError
from mailer.ingest.text import parse_text
from tests.conftest import SEED_RELEASE

SEED_TITLE = "Heitkamp Leads Training in Fargo on Identifying & Reporting Human Trafficking"
SEED_SUBTITLE = ("Senator Continues Efforts to Combat Issue which is Unfortunately Growing in "
                 "North Dakota")


def test_seed_release_parses_exactly():
    release = parse_text(SEED_RELEASE.read_text(encoding="utf-8"), "seed.txt")
    assert release.title == SEED_TITLE
    assert release.subtitle == SEED_SUBTITLE
    assert release.date == date(2014, 5, 9)
    assert release.dateline == "FARGO, N.D."
    assert release.paragraphs[0].startswith("Continuing her efforts since last fall")
    assert release.paragraphs[-1].endswith("discuss human trafficking and examine ways to "
                                           "combat the problem.")
    assert release.contact == "Contact Senator Heitkamp's press office at press@heitkamp.senate.gov"
    assert len(release.paragraphs) == 5
    body = release.body
    assert "###" not in body and "Press Releases" not in body and "Contact Senator" not in body
    # the quote paragraph is kept whole, curly quotes and all
    assert release.paragraphs[2].startswith("“In order to diminish the threat")


WIRE = """FOR IMMEDIATE RELEASE
November 3, 2025
Contact: Jane Doe, (202) 224-2043
jane_doe@smith.senate.gov

Smith Introduces Bill to Expand Rural Broadband

Legislation Would Connect 40,000 North Dakota Homes

WASHINGTON {dash} U.S. Senator Pat Smith today introduced legislation to expand
high-speed internet to rural communities across the state, building on years of work.

"Every family deserves a connection," said Smith. "This bill gets it done."

The bill is supported by the state's cooperatives.

{end}
"""


@pytest.mark.parametrize("dash", ["—", "–", "--", "-"])
@pytest.mark.parametrize("end", ["###", "-30-", "# # #"])
def test_wire_layout_with_every_dash_and_end_mark(dash, end):
    release = parse_text(WIRE.format(dash=dash, end=end), "wire.txt")
    assert release.title == "Smith Introduces Bill to Expand Rural Broadband"
    assert release.subtitle == "Legislation Would Connect 40,000 North Dakota Homes"
    assert release.date == date(2025, 11, 3)
    assert release.dateline == "WASHINGTON"
    assert release.contact == "Jane Doe, (202) 224-2043\njane_doe@smith.senate.gov"
    # wrapped lines join into one paragraph; quotes stay their own paragraph
    assert release.paragraphs[0] == (
        "U.S. Senator Pat Smith today introduced legislation to expand high-speed internet "
        "to rural communities across the state, building on years of work.")
    assert release.paragraphs[1].startswith('"Every family deserves a connection,"')
    assert release.paragraphs[-1] == "The bill is supported by the state's cooperatives."


def test_dateline_carrying_the_date_and_no_header_date():
    text = ("Smith Statement on the Farm Bill\n\n"
            "BISMARCK, N.D. (Nov. 3, 2025) — Senator Smith released the following statement "
            "on the farm bill passed today by the House of Representatives.\n\n-30-\n")
    release = parse_text(text, "x.txt")
    assert release.title == "Smith Statement on the Farm Bill"
    assert release.subtitle is None
    assert release.dateline == "BISMARCK, N.D."
    assert release.date == date(2025, 11, 3)
    assert release.paragraphs == ["Senator Smith released the following statement on the "
                                  "farm bill passed today by the House of Representatives."]


def test_release_without_dateline_or_end_mark():
    text = ("Senator Jane Smith\nUnited States Senator for North Dakota\n\n"
            "Smith Honors Fargo Teacher of the Year\n\n"
            "Senator Smith today honored Maria Lopez, named Teacher of the Year. Lopez has "
            "taught at Fargo North High School for twenty years.\n\n"
            "Smith presented Lopez with a flag flown over the Capitol.\n")
    release = parse_text(text, "x.txt")
    assert release.title == "Smith Honors Fargo Teacher of the Year"
    assert release.dateline is None and release.date is None
    assert release.paragraphs[-1] == "Smith presented Lopez with a flag flown over the Capitol."
    assert len(release.paragraphs) == 2


@pytest.mark.parametrize("header, title, subtitle", [
    ("Smith Introduces Bill\nto Expand Rural Broadband", "Smith Introduces Bill to Expand "
     "Rural Broadband", None),
    ("Smith Introduces Bill to Expand,\nImprove Rural Broadband\nA Second Line Stands Apart",
     "Smith Introduces Bill to Expand, Improve Rural Broadband", "A Second Line Stands Apart"),
    ("Smith Introduces Rural Broadband Bill\nLegislation Would Connect 40,000 Homes",
     "Smith Introduces Rural Broadband Bill", "Legislation Would Connect 40,000 Homes"),
])
def test_headline_lines_without_a_blank_line_between(header, title, subtitle):
    text = (f"FOR IMMEDIATE RELEASE: Tuesday, November 4, 2025\n\n{header}\n\n"
            "WASHINGTON — Senator Smith today introduced a bill for rural broadband.\n")
    release = parse_text(text, "x.txt")
    assert (release.title, release.subtitle) == (title, subtitle)
    assert release.date == date(2025, 11, 4)


def test_single_line_breaks_only_and_crlf():
    text = ("Press Releases\r\nMay 09 2014\r\nHeadline Here\r\nSubhead Here\r\n"
            "FARGO, N.D. – First paragraph of the release with enough words in it.\r\n"
            "Second paragraph.\r\n###\r\nContact: press@example.gov\r\n")
    release = parse_text(text, "x.txt")
    assert (release.title, release.subtitle) == ("Headline Here", "Subhead Here")
    assert release.paragraphs == ["First paragraph of the release with enough words in it.",
                                  "Second paragraph."]
    assert release.contact == "press@example.gov"


@pytest.mark.parametrize("text, reason", [
    ("", "no text"),
    ("   \n\n \t\n", "no text"),
    ("Just a headline", "no body"),
    ("x" * 400 + "\n\nbody", "no headline"),
])
def test_unusable_text_gives_one_line_reason(text, reason):
    with pytest.raises(IngestError, match=reason) as info:
        parse_text(text, "bad.txt")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("bad.txt: ")


def _mangle(text: str, cuts: list[int], junk: str) -> str:
    for cut in cuts:
        if text:
            at = cut % len(text)
            text = text[:at] + junk + text[at + len(junk):]
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=3000))
def test_random_text_never_raises_anything_but_ingest_error(text):
    try:
        release = parse_text(text, "random.txt")
    except IngestError as exc:
        assert "\n" not in str(exc)
    else:
        assert release.title and release.paragraphs


@settings(max_examples=150, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0), max_size=8),
       junk=st.sampled_from(["", "\n\n", "###", "—", "\x00", "\ufeff", "May 09 2014\n\n",
                             "Contact:", "\r", "FARGO, N.D. –", "\n-30-\n", "\u00a0" * 3]),
       drop=st.integers(min_value=0, max_value=4000))
def test_mangled_seed_never_raises_anything_but_ingest_error(cuts, junk, drop):
    seed = SEED_RELEASE.read_text(encoding="utf-8")
    text = _mangle(seed[drop:], cuts, junk)
    try:
        release = parse_text(text, "mangled.txt")
    except IngestError:
        return
    assert release.title.strip() == release.title and release.title
    assert all(p.strip() for p in release.paragraphs)
