"""RSS 0.9x/1.0/2.0 and Atom feeds: every item becomes a ``ParsedRelease``.

Real office feeds are untidy; this copes with what ``tests/fixtures/feeds`` shows:
relative item links (resolved against the channel link, else the feed's URL, and
percent-encoded), double-escaped entities (``&amp;nbsp;``), dates feedparser cannot read
("Monday, April 15, 2013 - 2:23pm": read with ``parse_date``), items without a date (kept,
dated None), paragraphs glued together when a CMS stripped the tags, end marks glued to the
last word ("…Festival###"), titles with stray whitespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, urljoin, urlsplit
from zoneinfo import ZoneInfo

import feedparser

from mailer.errors import IngestError
from mailer.ingest.dates import parse_date, struct_to_date
from mailer.ingest.fragments import elements_html, sanitize_html, strip_text_prefix
from mailer.ingest.html import html_paragraphs
from mailer.ingest.parsed import (
    END_MARK_INLINE,
    MAX_TITLE,
    ParsedRelease,
    clean_inline,
    is_end_mark,
    split_dateline,
    unescape_entities,
)
from mailer.ingest.text import CONTACT_LABEL

_BLOCK_TAG = re.compile(r"<(?:p|div|br|li|ul|ol|blockquote|h[1-6]|table)\b", re.I)
#: Sentence end immediately followed by the next sentence's capital: a lost paragraph break.
_GLUED = re.compile(r"(?<=[a-z0-9)]{2}[.!?:])(?=“?[A-Z][a-z])|(?<=[a-z.!?,][”\"])(?=“?[A-Z][a-z])")


@dataclass
class FeedDocument:
    title: str | None
    link: str | None
    items: list[ParsedRelease] = field(default_factory=list)
    skipped: int = 0


def parse_feed(data: bytes, source: str, *, url: str | None = None,
               zone: ZoneInfo | None = None) -> FeedDocument:
    """Parse feed bytes. ``url`` is where the feed was fetched from (for relative links).

    Raises IngestError when the bytes are not an RSS or Atom feed.
    """
    parsed = feedparser.parse(data, response_headers={"content-location": url} if url else None,
                              sanitize_html=True, resolve_relative_uris=False)
    if not parsed.get("version") and not parsed.entries:
        reason = parsed.get("bozo_exception")
        detail = f": {str(reason).splitlines()[0]}" if reason else ""
        raise IngestError(f"{source}: not an RSS or Atom feed{detail}")
    _refuse_truncated(parsed, source)
    channel_link = _http_url(parsed.feed.get("link"), url)
    base = channel_link or url
    document = FeedDocument(title=clean_inline(unescape_entities(parsed.feed.get("title", "")))
                            or None, link=channel_link)
    for entry in parsed.entries:
        item = _item(entry, source, base, zone or ZoneInfo("UTC"))
        if item is None:
            document.skipped += 1
        else:
            document.items.append(item)
    return document


def _refuse_truncated(parsed, source: str) -> None:
    """feedparser recovers items from a feed cut off mid-download, the last one maimed;
    such a feed is refused (a later poll gets it whole). Other XML slips real feeds are full
    of (undefined entities, stray ampersands) are tolerated."""
    reason = parsed.get("bozo_exception")
    if not parsed.get("bozo") or reason is None:
        return
    message = str(getattr(reason, "getMessage", lambda: reason)())
    if message in ("no element found", "unclosed token"):
        line = getattr(reason, "getLineNumber", lambda: None)()
        where = f" at line {line}" if line else ""
        raise IngestError(f"{source}: the feed is cut off ({message}{where})")


def _item(entry, source: str, base: str | None, zone: ZoneInfo) -> ParsedRelease | None:
    link = _http_url(entry.get("link") or (entry.get("id") if entry.get("guidislink") else None),
                     base)
    paragraphs, elements, contact = _body(entry)
    title = clean_inline(unescape_entities(entry.get("title", "")))
    if not title and paragraphs:
        title = _first_sentence(paragraphs[0])
    if not title:
        return None  # nothing to call it: not a release
    dateline, dateline_date, first = split_dateline(paragraphs[0]) if paragraphs else (None,) * 3
    if dateline:
        paragraphs[0] = first
        if elements:
            strip_text_prefix(elements[0], len(first))
    body_html = sanitize_html(elements_html(elements), base) or None if elements else None
    guid = _qualified_guid(clean_inline(entry.get("id") or ""), base) or link
    return ParsedRelease(
        title=title[:MAX_TITLE * 3], source=source, paragraphs=paragraphs, link=link,
        guid=guid, date=_entry_date(entry, zone) or dateline_date, dateline=dateline,
        body_html=body_html,
        contact="\n".join(CONTACT_LABEL.match(c).group("rest").strip() for c in contact) or None,
    )


def _entry_date(entry, zone: ZoneInfo):
    for key in ("published", "updated", "created"):
        parsed = struct_to_date(entry.get(f"{key}_parsed"), zone)
        if parsed is not None:
            return parsed
        fallback = parse_date(entry.get(key))
        if fallback is not None:
            return fallback
    return None


def _body(entry) -> tuple[list[str], list, list[str]]:
    """Paragraphs of the item's content (full content over summary), the elements they came
    from when it is HTML, and "Contact: …" lines (which are not body)."""
    contents = entry.get("content") or []
    raw = contents[0].get("value", "") if contents else entry.get("summary", "")
    if not raw or not raw.strip():
        return [], [], []
    if _BLOCK_TAG.search(raw):
        texts, elements = html_paragraphs(raw)
        pairs = [(unescape_entities(t), el) for t, el in zip(texts, elements, strict=True)]
        contact = [t for i, (t, _) in enumerate(pairs) if i and _is_contact(t)]
        kept = [(t, el) for t, el in pairs if not is_end_mark(t) and t not in contact]
        paragraphs = [t for t, _ in kept]
        if _split_end_marks(paragraphs) != paragraphs:  # marks glued to text: no HTML copy
            return _split_end_marks(paragraphs), [], contact
        return paragraphs, list({id(el): el for _, el in kept}.values()), contact
    # Plain text (maybe with inline tags and entities): blank lines separate paragraphs.
    text = unescape_entities(re.sub(r"<[^>]+>", "", raw))
    chunks = [clean_inline(c) for c in re.split(r"\n\s*\n", text)]
    paragraphs = []
    for chunk in _split_end_marks([c for c in chunks if c]):
        paragraphs.extend(p.strip() for p in _GLUED.split(chunk) if p.strip())
    contact = [p for i, p in enumerate(paragraphs) if i and _is_contact(p)]
    return [p for p in paragraphs if p not in contact], [], contact


def _is_contact(text: str) -> bool:
    match = CONTACT_LABEL.match(text)
    return bool(match and match.group("rest") and len(text) < 300)


def _split_end_marks(paragraphs: list[str]) -> list[str]:
    """An end mark inside a feed item separates the release from what follows (a statement,
    remarks): it becomes a paragraph break, not text."""
    out = []
    for paragraph in paragraphs:
        out.extend(part for part in (clean_inline(p) for p in END_MARK_INLINE.split(paragraph))
                   if part)
    return out


def _qualified_guid(guid: str, namespace: str | None) -> str | None:
    """GUIDs are unique within one feed only ("1", "2"… are common): one that is not an
    absolute URI is qualified with the channel link, so two feeds' item "1" never meet."""
    if not guid:
        return None
    if re.match(r"^(?:[a-z][a-z0-9+.-]*://|urn:|tag:)", guid, re.I) or not namespace:
        return guid[:2000]
    return f"{namespace}#{guid}"[:2000]


def _first_sentence(text: str) -> str:
    match = re.match(r"(.{20,200}?[.!?])(?:\s|$)", text)
    return match.group(1) if match else text[:120].rstrip() + ("…" if len(text) > 120 else "")


def _http_url(value: str | None, base: str | None) -> str | None:
    """An absolute, percent-encoded http(s) URL, or None."""
    if not value or not value.strip():
        return None
    value = unescape_entities(value.strip())
    if base and not re.match(r"^[a-z][a-z0-9+.-]*:", value, re.I):
        value = urljoin(base, value)
    if urlsplit(value).scheme.lower() not in ("http", "https") or not urlsplit(value).netloc:
        return None
    return quote(value, safe=":/?#[]@!$&'()*+,;=%~")
