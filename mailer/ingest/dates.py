"""Dates as press offices write them.

``parse_date`` understands "May 09 2014", "November 3, 2025", "Nov. 3, 2025", "3 November
2025", "Monday, April 15, 2013 - 2:23pm", "2025-11-03", "11/03/2025" and RFC 822 dates
("Thu, 02 May 2013 11:27:00 EST"). It never raises: anything it cannot read is ``None``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}
_MONTH = (r"(?P<month>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|"
          r"aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_WEEKDAY = (r"(?:(?:mon|tue(?:s)?|wed(?:nes)?|thu(?:r(?:s)?)?|fri|sat(?:ur)?|sun)"
            r"(?:day)?\.?,?\s+)?")
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>\d{4})(?!\d)"

_PATTERNS = [
    re.compile(rf"{_WEEKDAY}{_MONTH}\s+{_DAY},?\s+{_YEAR}", re.I),
    re.compile(rf"{_WEEKDAY}{_DAY}\s+{_MONTH},?\s+{_YEAR}", re.I),
    re.compile(r"(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})(?![\d])"),
    re.compile(r"(?<![\d/])(?P<month>\d{1,2})/(?P<day>\d{1,2})/(?P<year>\d{4})\b"),
]
#: What may follow a date on a line that holds only a date: a time, am/pm and a zone.
_TIME_TAIL = re.compile(
    r"^[\s,@\-–—|]*(?:at\s+)?(?:\d{1,2}(?::\d{2}){0,2}\s*(?:[ap]\.?m\.?)?)?\s*"
    r"(?:[A-Z]{2,4}|[+-]\d{2}:?\d{2}|Z)?\s*$", re.I,
)
_TIME_OF_DAY = re.compile(r"T\d{2}:\d{2}")


def _build(match: re.Match) -> date | None:
    month = match.group("month")
    month_number = _MONTHS.get(month[:3].lower()) if not month.isdigit() else int(month)
    try:
        return date(int(match.group("year")), month_number or 0, int(match.group("day")))
    except (TypeError, ValueError):
        return None


def parse_date(text: str | None, *, whole: bool = False) -> date | None:
    """The first date in ``text``; with ``whole=True`` only when the text is nothing but a date
    (optionally with a weekday, a time and a zone). Returns None when there is none."""
    if not text:
        return None
    text = text.strip()
    if len(text) > 200 and whole:
        return None
    rfc = _rfc822(text)
    if rfc is not None:
        return rfc
    best: tuple[int, date] | None = None
    for pattern in _PATTERNS:
        match = pattern.match(text) if whole else pattern.search(text)
        if match is None:
            continue
        if whole and not _TIME_TAIL.match(text[match.end():]) \
                and not _TIME_OF_DAY.match(text[match.end():]):
            continue
        found = _build(match)
        if found is not None and (best is None or match.start() < best[0]):
            best = (match.start(), found)
    return best[1] if best else None


def find_date(text: str) -> tuple[date, int, int] | None:
    """The earliest date in ``text`` with its (start, end) offsets, or None."""
    best: tuple[date, int, int] | None = None
    for pattern in _PATTERNS:
        match = pattern.search(text)
        if match is None:
            continue
        found = _build(match)
        if found is not None and (best is None or match.start() < best[1]):
            best = (found, match.start(), match.end())
    return best


def _rfc822(text: str) -> date | None:
    if not re.match(r"^(?:[A-Za-z]{3},\s*)?\d{1,2}\s+[A-Za-z]{3}\s+\d{4}\s+\d", text):
        return None
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed.date() if parsed is not None else None


def parse_timestamp(text: str | None, zone: ZoneInfo) -> date | None:
    """An ISO 8601 timestamp (``<time datetime>``, meta tags) as a date in the office's zone;
    falls back to ``parse_date``."""
    if not text:
        return None
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return parse_date(value)
    if parsed.tzinfo is None or not _TIME_OF_DAY.search(value):
        return parsed.date()
    return parsed.astimezone(zone).date()


def struct_to_date(value, zone: ZoneInfo) -> date | None:
    """feedparser's UTC ``time.struct_time`` as a date in the office's zone."""
    if not value:
        return None
    try:
        moment = datetime(*value[:6], tzinfo=UTC)
    except (TypeError, ValueError):
        return None
    return moment.astimezone(zone).date()
