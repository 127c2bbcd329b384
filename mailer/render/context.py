"""What templates see: the office, the release(s), the links, the recipient placeholders.

Templates get plain dictionaries and lists (never ORM objects), so a template cannot reach
the database session through an attribute, and the sample data ``mailer templates check``
uses has exactly the same shape as a real send.
"""

from __future__ import annotations

import html as html_module
import re
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

import nh3
from markupsafe import Markup

from mailer.render.placeholders import defuse
from mailer.settings import Settings

# Quotation marks a press office uses: straight, curly and low-9.
_QUOTED = re.compile(r"[\"“„]([^\"“”„]*)[\"”]")
#: A paragraph at least this share inside quotation marks is printed as a pull quote.
QUOTE_SHARE = 0.6
_END_MARKS = {"###", "# # #", "-30-", "- 30 -"}
_DASHES = " \u2013\u2014-:,"
SUMMARY_CHARS = 280
_BREAK = re.compile(r"<br\s*/?>", re.I)
_BLOCK_END = re.compile(r"</(p|div|h[1-6]|li|blockquote|tr|table|ul|ol)>", re.I)
_TAG = re.compile(r"<[^>]+>")


def office_context(settings: Settings) -> dict[str, Any]:
    return {
        "name": settings.office_name,
        "logo_url": settings.logo_url,
        "postal_address": settings.postal_address,
        "public_url": settings.public_url,
        "from_email": settings.from_email,
        "from_name": settings.from_name,
        "reply_to": settings.reply_to or settings.from_email,
    }


def links_context(settings: Settings, campaign_id: int | None) -> dict[str, str]:
    """Links that are the same for every recipient (the per-person ones are placeholders)."""
    base = settings.public_url
    web = f"{base}/archive/{campaign_id}" if campaign_id is not None else f"{base}/archive"
    return {"web": web, "archive": f"{base}/archive", "subscribe": f"{base}/subscribe",
            "home": base}


def is_quote(paragraph: str) -> bool:
    """True when most of the paragraph sits inside quotation marks (a statement)."""
    text = paragraph.strip()
    if not text or text[0] not in "\"“„":
        return False
    quoted = sum(len(m.group(1)) for m in _QUOTED.finditer(text))
    return quoted >= QUOTE_SHARE * len(text)


def split_paragraphs(body: str) -> list[str]:
    """Paragraphs separated by blank lines, inner line breaks joined, end marks dropped."""
    paragraphs = []
    for chunk in re.split(r"\n\s*\n", body.replace("\r\n", "\n")):
        text = " ".join(chunk.split())
        if text and text not in _END_MARKS:
            paragraphs.append(text)
    return paragraphs


def html_paragraphs(html: str) -> list[str]:
    """The paragraphs of an HTML body as plain text (block ends become paragraph breaks)."""
    text = _BREAK.sub("\n", html)
    text = _BLOCK_END.sub("\n\n", text)
    return split_paragraphs(html_module.unescape(_TAG.sub("", text)))


def release_context(release: Any, settings: Settings, *, link: str | None = None
                    ) -> dict[str, Any]:
    """A release (ORM row or anything with the same attributes) as template data.

    The dateline is separated from the first paragraph when the body repeats it, so the
    template can set it in bold small caps ("FARGO, N.D. – Continuing …").
    """
    paragraphs = split_paragraphs(defuse(getattr(release, "body", "") or ""))
    body_html = getattr(release, "body_html", None)
    # Only when there is no plain body: sanitized again here because it is printed raw.
    safe_html = Markup(nh3.clean(defuse(body_html))) if body_html and not paragraphs else ""
    if safe_html:
        paragraphs = html_paragraphs(safe_html)  # for the text version and the summary
    dateline = defuse((getattr(release, "dateline", None) or "").strip())
    if dateline and paragraphs and paragraphs[0].startswith(dateline):
        paragraphs[0] = paragraphs[0][len(dateline):].lstrip(_DASHES)
    when = getattr(release, "date", None)
    return {
        "id": getattr(release, "id", None),
        "title": defuse(release.title or ""),
        "subtitle": defuse(getattr(release, "subtitle", None) or ""),
        "date": when.isoformat() if when else "",
        "date_display": format_date(when),
        "dateline": dateline,
        "dateline_title": title_case_place(dateline),
        "paragraphs": [{"text": p, "quote": is_quote(p)} for p in paragraphs],
        "body_html": safe_html,
        "summary": summarize(paragraphs),
        "contact": defuse((getattr(release, "contact", None) or "").strip()),
        "link": safe_url(link or getattr(release, "link", None)),
    }


def intro_context(note: str | None) -> list[str]:
    """A campaign's intro note as its paragraphs of plain text (blank lines separate them;
    the template escapes each one). Empty when there is no note."""
    return split_paragraphs(defuse(note or ""))


def campaign_preheader(campaign: Any, release: dict[str, Any]) -> str:
    """The hidden preview line: the campaign's own, else the release's subtitle or summary."""
    own = " ".join((getattr(campaign, "preheader", None) or "").split())
    return defuse(own) or release["subtitle"] or release["summary"]


def digest_context(releases: Iterable[Any], settings: Settings, web_url: str
                   ) -> list[dict[str, Any]]:
    """Each release of a digest; one without its own link points at the digest's web view."""
    items = []
    for release in releases:
        anchor = f"{web_url}#release-{getattr(release, 'id', '') or len(items) + 1}"
        items.append(release_context(release, settings, link=getattr(release, "link", None)
                                     or anchor))
    return items


def safe_url(url: str | None) -> str:
    """``url`` when it is an http(s) URL, else "" (a feed could carry ``javascript:`` links,
    and autoescaping does not make those harmless)."""
    url = (url or "").strip()
    return url if url.lower().startswith(("https://", "http://")) else ""


def title_case_place(place: str) -> str:
    """``FARGO, N.D.`` -> ``Fargo, N.D.`` (set in small caps, it reads like a newspaper's);
    abbreviations with periods keep their capitals."""
    words = place.split(" ")
    out = []
    for index, word in enumerate(words):
        bare = word.rstrip(".,")
        is_state_code = index == len(words) - 1 and len(bare) == 2 and bare.isupper()
        keep = "." in bare or is_state_code
        out.append(word if keep else word[:1].upper() + word[1:].lower())
    return " ".join(out)


def summarize(paragraphs: Sequence[str], limit: int = SUMMARY_CHARS) -> str:
    """The first paragraph, cut at a word boundary near ``limit`` characters."""
    if not paragraphs:
        return ""
    first = paragraphs[0]
    if len(first) <= limit:
        return first
    cut = first[:limit].rsplit(" ", 1)[0].rstrip(_DASHES + ".;")
    return cut + "…"


def format_date(value: date | None) -> str:
    """``May 9, 2014`` (no leading zero, no locale surprises)."""
    if value is None:
        return ""
    return f"{value:%B} {value.day}, {value.year}"
