"""Plain-text press releases in the layouts offices actually use.

The office's own layout (the seed release)::

    Senator Heidi Heitkamp United States Senator for North Dakota     <- office line (chrome)
    Press Releases                                                    <- chrome
    May 09 2014                                                       <- date
    Heitkamp Leads Training in Fargo on …                             <- headline
    Senator Continues Efforts to …                                    <- subheadline
    FARGO, N.D. – Continuing her efforts …                            <- dateline + body
    …
    ###                                                               <- end mark
    Contact Senator Heitkamp's press office at …                      <- contact

and the wire layout: "FOR IMMEDIATE RELEASE", a "Contact: …" header, dates like "November 3,
2025", datelines with an em dash, en dash or "--", end marks "###" or "-30-".

How it reads: blocks are separated by blank lines. The body starts at the first block that
opens with a dateline; without one, at the first block that reads like prose. Everything
before it is the header: chrome, dates and contact lines are recognised, the remaining lines
are headline and subheadline. Everything after the end mark is the trailer (contact).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from mailer.errors import IngestError
from mailer.ingest.dates import parse_date
from mailer.ingest.parsed import (
    MAX_SUBTITLE,
    MAX_TITLE,
    ParsedRelease,
    clean_inline,
    is_end_mark,
    split_dateline,
)

CHROME = re.compile(
    r"^(?:press\s+releases?|news\s+releases?|news|newsroom|press|media\s+advisory|"
    r"press\s+statement|statement|for\s+immediate\s+release|immediate\s+release|"
    r"for\s+release\b.*|embargoed\b.*|print|share|email|back\s+to\s+(?:top|press\s+releases))"
    r"\s*[:.]?\s*",
    re.I,
)
OFFICE_LINE = re.compile(
    r"\b(?:senator|representative|congressman|congresswoman|delegate)\s+(?:for|from)\b|"
    r"^office\s+of\b|^(?:the\s+)?united\s+states\s+senate$|\bmember\s+of\s+congress\b",
    re.I,
)
CONTACT_LABEL = re.compile(r"^(?:media\s+|press\s+)?contacts?\s*[:\-–—]\s*(?P<rest>.*)$", re.I)
CONTACTISH = re.compile(r"contact|press\s+office|@|\(?\d{3}\)?[\s.\-]\d{3}[\s.\-]\d{4}", re.I)
_BULLET = re.compile(r"^\s*(?:[-*•·▪]|\d{1,2}[.)])\s+")
#: Header blocks that are prose, not a headline.
_MAX_HEADER_BLOCKS = 10


@dataclass
class _Header:
    runs: list[list[str]] = field(default_factory=lambda: [[]])
    date: date | None = None
    contact: list[str] = field(default_factory=list)


def parse_text(text: str, source: str) -> ParsedRelease:
    """Parse one plain-text release.

    Raises IngestError (one line, naming ``source``) when there is no text, no headline or
    no body. Never raises anything else, whatever the input.
    """
    blocks = split_blocks(text)
    if not blocks:
        raise IngestError(f"{source}: the file has no text")
    main, trailer = _split_at_end_mark(blocks)
    start = _body_start(main)
    header = _read_header(main[:start])
    body = [_paragraph(block) for block in main[start:]]
    title, subtitle, spill = _headline(header, source)
    body = [p for p in spill + body if p]
    if not body and subtitle:  # a headline and one short paragraph
        body, subtitle = [subtitle], None
    if not body:
        raise IngestError(f"{source}: no body text after the headline")
    dateline, dateline_date, first = split_dateline(body[0])
    body[0] = first
    return ParsedRelease(
        title=title, subtitle=subtitle, source=source, paragraphs=body,
        date=header.date or dateline_date, dateline=dateline,
        contact=_contact(header.contact, trailer),
    )


def split_blocks(text: str) -> list[list[str]]:
    """Blocks of non-empty, cleaned lines. A file that never leaves a blank line is read as
    one block per line (some offices paste with single line breaks)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    raw = [b for b in re.split(r"\n[ \t\u00a0]*\n", text) if b.strip()]
    blocks = [[clean_inline(line) for line in b.split("\n")] for b in raw]
    blocks = [[line for line in b if line] for b in blocks]
    blocks = [b for b in blocks if b]
    if len(blocks) <= 2 and sum(len(b) for b in blocks) > 6:
        blocks = [[line] for b in blocks for line in b]
    return blocks


def _split_at_end_mark(blocks: list[list[str]]) -> tuple[list[list[str]], list[list[str]]]:
    for b_index, block in enumerate(blocks):
        for l_index, line in enumerate(block):
            if is_end_mark(line):
                before = blocks[:b_index] + ([block[:l_index]] if l_index else [])
                after = ([block[l_index + 1:]] if block[l_index + 1:] else [])
                return before, after + blocks[b_index + 1:]
    return blocks, []


def _body_start(blocks: list[list[str]]) -> int:
    """Index of the first body block (see the module docstring)."""
    limit = min(len(blocks), _MAX_HEADER_BLOCKS)
    for index in range(1, limit):
        if split_dateline(_paragraph(blocks[index]))[0] is not None:
            return index
    for index in range(1, limit):
        if _is_prose(blocks[index]):
            return index
    return _after_headline(blocks)


def _after_headline(blocks: list[list[str]]) -> int:
    """No dateline and no prose: the body starts after the first text block (the headline)
    and a short subheadline, skipping chrome, dates and contacts around them."""
    seen_text = 0
    for index, block in enumerate(blocks):
        kinds = {_classify(line, _Header()) for line in block}
        if kinds <= {"chrome", "date", "contact"}:
            continue
        if seen_text == 1 and (len(" ".join(block)) > 200 or block[-1].endswith(".")):
            return index
        seen_text += 1
        if seen_text == 2:
            return index + 1
    return len(blocks)


def _is_prose(block: list[str]) -> bool:
    text = " ".join(block)
    if CONTACT_LABEL.match(block[0]) or parse_date(text, whole=True):
        return False
    sentences = len(re.findall(r"[a-z0-9)”\"'][.!?][”\"']?(?:\s|$)", text))
    return len(text) > 250 or (len(text) > 120 and sentences >= 1) or sentences >= 2


def _read_header(blocks: list[list[str]]) -> _Header:
    header = _Header()
    for block in blocks:
        in_contact = previous_text = False
        for line in block:
            kind = _classify(line, header)
            if kind == "contact":
                in_contact = True
            elif in_contact and kind == "text" and CONTACTISH.search(line):
                header.contact.append(line)
            elif kind == "text" and previous_text and _continues(header.runs[-1][-1], line):
                header.runs[-1][-1] += " " + line  # a headline wrapped over two lines
            elif kind == "text":
                header.runs[-1].append(line)
            else:
                header.runs.append([])
            if kind != "contact":
                in_contact = in_contact and kind == "text"
            previous_text = kind == "text" and not in_contact
    return header


_CONNECTOR = re.compile(r"(?:[,;:\-–—]|\b(?:a|an|the|of|to|for|and|or|in|on|with|at|by|as))$",
                        re.I)


def _continues(previous: str, line: str) -> bool:
    """Whether ``line`` carries on ``previous`` (same block, no blank line between): it starts
    in lower case, or ``previous`` stops on a comma, dash or small word."""
    return line[:1].islower() or bool(_CONNECTOR.search(previous))


def _classify(line: str, header: _Header) -> str:
    """"chrome", "date", "contact" or "text"; records dates and contacts on ``header``."""
    contact = CONTACT_LABEL.match(line)
    if contact:
        if contact.group("rest"):
            header.contact.append(contact.group("rest").strip())
        return "contact"
    when = parse_date(line, whole=True)
    if when is not None:
        header.date = header.date or when
        return "date"
    chrome = CHROME.match(line)
    if chrome and (chrome.end() == len(line) or parse_date(line[chrome.end():], whole=True)):
        header.date = header.date or parse_date(line[chrome.end():], whole=True)
        return "chrome"
    if OFFICE_LINE.search(line):
        return "chrome"
    return "text"


def _headline(header: _Header, source: str) -> tuple[str, str | None, list[str]]:
    """Headline, subheadline and any further header lines (which belong to the body)."""
    runs = [run for run in header.runs if run]
    if not runs:
        raise IngestError(f"{source}: no headline found before the body text")
    run = runs[-1]
    title, rest = run[0], run[1:]
    if len(title) > MAX_TITLE:
        raise IngestError(f"{source}: no headline found (the first line is {len(title)} "
                          f"characters long; is this a press release?)")
    subtitle = None
    if rest and len(rest[0]) <= MAX_SUBTITLE:
        subtitle, rest = rest[0], rest[1:]
    return title, subtitle, rest


def _paragraph(block: list[str]) -> str:
    """Lines of one block as a paragraph: wrapped lines joined, list items kept apart."""
    out: list[str] = []
    for line in block:
        if out and not _BULLET.match(line):
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
    return "\n".join(out)


def _contact(header_lines: list[str], trailer: list[list[str]]) -> str | None:
    if header_lines:
        return "\n".join(header_lines)
    lines = [line for block in trailer for line in block]
    contact = []
    for line in lines:
        labelled = CONTACT_LABEL.match(line)
        if labelled and labelled.group("rest"):
            contact.append(labelled.group("rest").strip())
        elif CONTACTISH.search(line):
            contact.append(line)
    return "\n".join(contact) if contact else None
