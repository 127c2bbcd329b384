"""What every parser produces, and the text clean-up they share.

A ``ParsedRelease`` is a release before it is stored: the text, HTML, Markdown and feed parsers
all return it, and ``mailer.ingest.service`` deduplicates and stores it.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

from mailer.ingest.dates import find_date

MAX_TITLE = 300
MAX_SUBTITLE = 600
MAX_DATELINE = 80


@dataclass
class ParsedRelease:
    """A release as read from one source. ``paragraphs`` excludes headline, dateline prefix,
    page chrome and end marks; ``body_html`` (optional) is already sanitized."""

    title: str
    source: str
    paragraphs: list[str] = field(default_factory=list)
    subtitle: str | None = None
    date: date | None = None
    dateline: str | None = None
    contact: str | None = None
    link: str | None = None
    guid: str | None = None
    body_html: str | None = None
    #: Topic slugs or names the source itself names (Markdown front matter).
    topics: list[str] = field(default_factory=list)

    @property
    def body(self) -> str:
        return "\n\n".join(self.paragraphs)


_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")


def clean_inline(text: str) -> str:
    """One line of text: NFC, no invisible characters, single spaces, stripped."""
    text = unicodedata.normalize("NFC", text).translate(_INVISIBLE)
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", " ", text)
    return _SPACES.sub(" ", text.replace("\n", " ").replace("\r", " ")).strip()


def unescape_entities(text: str) -> str:
    """Decode HTML entities, also double-escaped ones (``&amp;nbsp;``) feeds are full of."""
    for _ in range(3):
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    return text


END_MARK = re.compile(r"^\s*(?:#\s*#\s*#|[-–—]\s*30\s*[-–—])\s*$")
#: An end mark glued to text, as feed descriptions have it ("…and Festival###").
END_MARK_INLINE = re.compile(r"\s*(?:#\s*#\s*#|(?<!\w)-30-(?!\w))\s*")


def is_end_mark(line: str) -> bool:
    return bool(END_MARK.match(line))


# A dateline: a place in capitals or "City, ST", maybe a date, then a dash.
_DATELINE = re.compile(
    r"^(?P<head>[^\n–—―]{2,90}?)\s*(?:—|–|―|-{2,3}|\s-)\s*(?P<rest>\S.*)$", re.S,
)
_PLACE_WORD = re.compile(r"^(?:[A-Z][A-Za-z'’.\-]*|[A-Z]\.(?:[A-Z]\.)*|St\.|Ft\.|Mt\.)$")


def split_dateline(paragraph: str) -> tuple[str | None, date | None, str]:
    """Split "FARGO, N.D. – Continuing…" into ("FARGO, N.D.", None, "Continuing…").

    Also understands "WASHINGTON (November 3, 2025) —", "WASHINGTON, Nov. 3, 2025 --" and a
    date glued in front ("February 28, 2013WASHINGTON, DC ---"). Returns (None, None,
    paragraph) when the paragraph does not open with a dateline.
    """
    match = _DATELINE.match(paragraph)
    if not match or len(match.group("rest")) < 20:
        return None, None, paragraph
    head, found_date = _take_date(match.group("head").strip())
    place = head.strip(" ,-–—(").strip()
    if not _looks_like_place(place):
        return None, None, paragraph
    return place, found_date, match.group("rest").strip()


def _take_date(head: str) -> tuple[str, date | None]:
    found = find_date(head)
    if found is None:
        return head, None
    when, start, end = found
    before, after = head[:start], head[end:]
    if start == 0:  # "February 28, 2013WASHINGTON"
        return after, when
    return re.sub(r"[\s,(]+$", "", before) + re.sub(r"^[\s)]+", " ", after).rstrip(), when


def _looks_like_place(place: str) -> bool:
    if not 2 <= len(place) <= MAX_DATELINE or not re.search(r"[A-Za-z]{2}", place):
        return False
    words = place.replace(",", " ").split()
    if not 1 <= len(words) <= 6 or not all(_PLACE_WORD.match(w) for w in words):
        return False
    first = re.sub(r"[^A-Za-z]", "", words[0])
    return first.isupper() or "," in place or place == "Washington"



def normalize_for_hash(text: str) -> str:
    """Text reduced to what matters for "is this the same release": letters and digits,
    lower case, single spaces (quotes, dashes and whitespace styles do not count)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.findall(r"\w+", text))
