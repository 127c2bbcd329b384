"""Markdown releases with YAML front matter::

    ---
    title: Heitkamp Leads Training in Fargo
    subtitle: Senator Continues Efforts …        (optional)
    date: 2014-05-09                             (optional; any format parse_date reads)
    dateline: FARGO, N.D.                        (optional; else read from the first paragraph)
    topics: [human-trafficking]                  (optional; slugs or names of known topics)
    contact: press@heitkamp.senate.gov           (optional)
    link: https://…                              (optional; also the identity for updates)
    ---
    FARGO, N.D. – Continuing her efforts …

Raw HTML in the Markdown goes through the same sanitizer as a web page's: scripts, styles,
forms and frames are dropped with their content, everything else is reduced to the safe subset.
"""

from __future__ import annotations

import re
from datetime import date

import yaml
from markdown_it import MarkdownIt

from mailer.errors import IngestError
from mailer.ingest.dates import parse_date
from mailer.ingest.fragments import elements_html, sanitize_html, strip_text_prefix
from mailer.ingest.html import html_paragraphs
from mailer.ingest.parsed import MAX_TITLE, ParsedRelease, clean_inline, is_end_mark, split_dateline

_FRONT = re.compile(r"\A\ufeff?---[ \t]*\r?\n(?P<yaml>.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)",
                    re.S)
_MD = MarkdownIt("commonmark", {"html": True, "linkify": False})


def parse_markdown(text: str, source: str) -> ParsedRelease:
    """Parse a Markdown release. Raises IngestError for bad front matter, no title or no body."""
    meta, body = front_matter(text, source)
    body_lines = body.splitlines()
    end = next((i for i, line in enumerate(body_lines) if is_end_mark(line)), None)
    trailer = body_lines[end + 1:] if end is not None else []
    body = "\n".join(body_lines[:end] if end is not None else body_lines)
    title = _string(meta.get("title"))
    if not title:
        match = re.search(r"^\s{0,3}#\s+(.+?)\s*#*\s*$", body, re.M)
        if match:
            title = clean_inline(match.group(1))
            body = body[:match.start()] + body[match.end():]
    if not title or len(title) > MAX_TITLE:
        raise IngestError(f"{source}: no title (give `title:` in the front matter or a # heading)")
    paragraphs, elements = html_paragraphs(_MD.render(body))
    if not paragraphs:
        raise IngestError(f"{source}: no body text")
    dateline = _string(meta.get("dateline"))
    found_dateline, dateline_date, first = split_dateline(paragraphs[0])
    if found_dateline:
        dateline = dateline or found_dateline
        paragraphs[0] = first
        strip_text_prefix(elements[0], len(first))
    link = _string(meta.get("link") or meta.get("url"))
    return ParsedRelease(
        title=title, subtitle=_string(meta.get("subtitle")), source=source,
        paragraphs=paragraphs, date=_date(meta.get("date"), source) or dateline_date,
        dateline=dateline, contact=_string(meta.get("contact")) or _trailer_contact(trailer),
        link=link, guid=_string(meta.get("guid") or meta.get("id")) or link,
        body_html=sanitize_html(elements_html(_unique(elements)), link) or None,
        topics=_topics(meta.get("topics") or meta.get("tags"), source),
    )


def front_matter(text: str, source: str) -> tuple[dict, str]:
    match = _FRONT.match(text)
    if not match:
        return {}, text.lstrip("\ufeff")
    try:
        meta = yaml.safe_load(match.group("yaml")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        raise IngestError(f"{source}: front matter is not valid YAML{where}") from None
    if not isinstance(meta, dict):
        raise IngestError(f"{source}: front matter must be `key: value` lines")
    return {str(k).lower(): v for k, v in meta.items()}, text[match.end():]


def _string(value) -> str | None:
    if value is None:
        return None
    return clean_inline(str(value)) or None


def _date(value, source: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value if not hasattr(value, "date") else value.date()
    found = parse_date(str(value))
    if found is None:
        raise IngestError(f"{source}: front matter date {value!r} is not a date")
    return found


def _topics(value, source: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        raise IngestError(f"{source}: front matter topics must be a list")
    return [clean_inline(str(v)) for v in value if clean_inline(str(v))]


def _trailer_contact(lines: list[str]) -> str | None:
    kept = [clean_inline(line) for line in lines if clean_inline(line)]
    kept = [line for line in kept if re.search(r"contact|press|@|\d{3}.\d{4}", line, re.I)]
    return "\n".join(kept) or None


def _unique(elements: list) -> list:
    seen, out = set(), []
    for el in elements:
        if id(el) not in seen:
            seen.add(id(el))
            out.append(el)
    return out
