"""Reading the subscriber lists offices really have: column names and messy values.

``HeaderMap`` recognizes the columns of a plain list, a Mailchimp audience export and a
listmonk export (the file itself is read by ``subscribers.csv_files``). ``parse_row`` turns
one row into a ``RowData`` or raises ``RowError`` with the reason a person can act on.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from mailer.errors import InvalidInput
from subscribers.addresses import InvalidEmail, email_hash, email_key, normalize_email
from subscribers.models import ACTIVE, BOUNCED, COMPLAINED, FREQUENCIES, PENDING, UNSUBSCRIBED
from subscribers.places import fill_place
from subscribers.text import clean_text


class RowError(ValueError):
    """One row cannot be imported; ``str(err)`` is the reason shown next to its line."""


# --- columns ---------------------------------------------------------------------------------

_ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("email", "email address", "e mail", "e mail address", "emailaddress", "mail",
              "email addr", "subscriber email"),
    "name": ("name", "full name", "fullname", "display name", "subscriber name"),
    "first_name": ("first name", "firstname", "fname", "given name", "first"),
    "last_name": ("last name", "lastname", "lname", "surname", "family name", "last"),
    "zip": ("zip", "zip code", "zipcode", "postal code", "postcode", "zip postal code",
            "postal", "zip5"),
    "address": ("address", "mailing address", "street address"),
    "county": ("county", "county name"),
    "state": ("state", "st", "state province", "state code"),
    "district": ("district", "congressional district", "cd"),
    "city": ("city", "town", "locality"),
    "topics": ("topics", "topic", "tags", "interests", "lists", "groups", "subscriptions"),
    "frequency": ("frequency", "digest", "digest frequency", "delivery frequency"),
    "status": ("status", "subscription status", "member status", "subscriber status"),
    "optin_time": ("optin time", "opt in time", "consent time", "consent at", "subscribed at",
                   "signup date", "sign up date", "created at", "date added", "timestamp",
                   "joined", "joined at", "join date", "date joined", "signup time"),
    "optin_ip": ("optin ip", "opt in ip", "ip", "ip address", "consent ip", "signup ip"),
    "confirm_time": ("confirm time", "confirmed at", "confirmation time"),
    "confirm_ip": ("confirm ip", "confirmation ip"),
    "unsub_time": ("unsub time", "unsubscribed at", "unsubscribe time", "unsubscribe date"),
    "clean_time": ("clean time", "cleaned at"),
    "attributes": ("attributes", "attribs"),
}
#: What a listmonk ``attributes`` object may supply.
_ATTRIBUTE_FIELDS = frozenset(("name", "first_name", "last_name", "zip", "county", "state",
                               "district", "topics", "frequency"))
_FORMULA_STARTS = frozenset("=+-@\t\r\n＝＋－＠")
_LOOKUP = {alias: key for key, aliases in _ALIASES.items() for alias in aliases}


def _header_key(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.strip().lower()).split())


class HeaderMap:
    """Which column holds which field. Raises InvalidInput when no column holds an address."""

    def __init__(self, header: list[str]):
        self.columns: dict[str, int] = {}
        self.ignored: list[str] = []
        for index, title in enumerate(header):
            key = _LOOKUP.get(_header_key(title))
            if key is None or key in self.columns:
                if title.strip():
                    self.ignored.append(title.strip())
                continue
            self.columns[key] = index
        if "email" not in self.columns:
            shown = ", ".join(repr(h.strip()) for h in header[:8]) or "nothing"
            raise InvalidInput(f"line 1: no email column found (the header has {shown})")

        self._pairs = sorted(self.columns.items(), key=lambda pair: pair[1])

    def get(self, fields: list[str], key: str) -> str:
        index = self.columns.get(key)
        if index is None or index >= len(fields):  # short rows simply lack the last fields
            return ""
        return _cell(fields[index])

    def values(self, fields: list[str]) -> dict[str, str]:
        """field -> trimmed text for every recognized column the row has (short rows simply
        lack the last ones); one pass, as this runs for every row of a big import."""
        count = len(fields)
        found = {}
        for key, index in self._pairs:
            if index >= count:
                break
            text = _cell(fields[index])
            if text:
                found[key] = text
        return found


def _cell(text: str) -> str:
    text = text.strip()
    # Undo the quote ``subscribers.export`` puts before formula-like cells (round trip).
    if text[:1] == "'" and text[1:2] in _FORMULA_STARTS:
        return text[1:].strip()
    return text


# --- values ----------------------------------------------------------------------------------

@dataclass(slots=True)
class RowData:
    line: int
    email: str
    email_hash: str
    email_key: int
    name: str | None
    zip: str | None
    county: str | None
    state: str | None
    district: str | None
    city: str | None
    topics: tuple[str, ...]
    frequency: str | None
    #: What the source says: active, pending, unsubscribed, bounced or complained.
    intent: str
    consent_at: datetime | None
    consent_ip: str | None
    confirmed_at: datetime | None


_STATUS_WORDS = {
    "": ACTIVE, "subscribed": ACTIVE, "active": ACTIVE, "enabled": ACTIVE,
    "confirmed": ACTIVE, "opted in": ACTIVE, "yes": ACTIVE,
    "pending": PENDING, "unconfirmed": PENDING,
    # listmonk "disabled"/"blocklisted": the old system would not mail them, so neither do we.
    "unsubscribed": UNSUBSCRIBED, "blocklisted": UNSUBSCRIBED, "blacklisted": UNSUBSCRIBED,
    "disabled": UNSUBSCRIBED, "opted out": UNSUBSCRIBED, "no": UNSUBSCRIBED,
    "cleaned": BOUNCED, "bounced": BOUNCED,
    "complained": COMPLAINED, "spam": COMPLAINED,
}
_ZIP = re.compile(r"(\d{5})(?:-?(\d{4}))?")
_ZIP_IN_ADDRESS = re.compile(r"\b(\d{5})(?:-(\d{4}))?\b")
_STATE_IN_ADDRESS = re.compile(r"(?:^|\s)([A-Z]{2})\s+\d{5}(?:-\d{4})?\b")
_US_STATES = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "district of columbia": "DC",
    "florida": "FL", "georgia": "GA", "hawaii": "HI", "idaho": "ID", "illinois": "IL",
    "indiana": "IN", "iowa": "IA", "kansas": "KS", "kentucky": "KY", "louisiana": "LA",
    "maine": "ME", "maryland": "MD", "massachusetts": "MA", "michigan": "MI",
    "minnesota": "MN", "mississippi": "MS", "missouri": "MO", "montana": "MT",
    "nebraska": "NE", "nevada": "NV", "new hampshire": "NH", "new jersey": "NJ",
    "new mexico": "NM", "new york": "NY", "north carolina": "NC", "north dakota": "ND",
    "ohio": "OH", "oklahoma": "OK", "oregon": "OR", "pennsylvania": "PA",
    "rhode island": "RI", "south carolina": "SC", "south dakota": "SD", "tennessee": "TN",
    "texas": "TX", "utah": "UT", "vermont": "VT", "virginia": "VA", "washington": "WA",
    "west virginia": "WV", "wisconsin": "WI", "wyoming": "WY", "puerto rico": "PR",
    "guam": "GU", "virgin islands": "VI", "american samoa": "AS",
}


def parse_row(line: int, fields: list[str], header: HeaderMap) -> RowData:
    """Validate one record. Raises RowError with a reason (invalid address, ZIP, state,
    frequency or status; missing address)."""
    values = header.values(fields)
    raw_email = values.get("email")
    if not raw_email:
        raise RowError("no email address" if any(f.strip() for f in fields) else "blank row")
    try:
        email = normalize_email(raw_email)
    except InvalidEmail as exc:
        raise RowError(str(exc)) from None
    if "attributes" in values:  # listmonk: custom fields fill the gaps the columns leave
        for key, item in _attributes(values["attributes"]).items():
            if key in _ATTRIBUTE_FIELDS and key not in values and _text(item):
                values[key] = _text(item)
    if "address" in values:  # Mailchimp's one-cell address ends "…  ND  58102  US"
        values.setdefault("zip", _from_address(_ZIP_IN_ADDRESS, values["address"]))
        values.setdefault("state", _from_address(_STATE_IN_ADDRESS, values["address"]))
    get = values.get
    digest = email_hash(email)
    zip_code = _zip(get("zip", ""))
    county, state, city = fill_place(zip_code, clean_text(get("county", ""), 100),
                                     _state(get("state", "")), clean_text(get("city", ""), 100))
    return RowData(
        line=line, email=email, email_hash=digest, email_key=email_key(digest),
        name=_name(get("name", ""), get("first_name", ""), get("last_name", "")),
        zip=zip_code, county=county, state=state,
        district=clean_text(get("district", ""), 20), city=city,
        topics=split_topics(get("topics", "")), frequency=_frequency(get("frequency", "")),
        intent=_intent(get("status", ""), get("unsub_time", ""), get("clean_time", "")),
        consent_at=parse_time(get("optin_time", "")),
        consent_ip=_ip(get("optin_ip", "")) or _ip(get("confirm_ip", "")),
        confirmed_at=parse_time(get("confirm_time", "")),
    )


def split_topics(text: str) -> tuple[str, ...]:
    """Topics separated by ``;`` or ``,`` (Mailchimp quotes each tag: ``"A","B"``)."""
    if not text:
        return ()
    if '"' in text:
        parts = [p.strip().strip('"').strip() for p in _TOPIC_SEPARATOR.split(text)]
    else:  # the usual cell, e.g. "human-trafficking;veterans": no regex, no quotes to peel
        parts = [p.strip() for p in text.replace(",", ";").split(";")]
    return tuple(dict.fromkeys(p for p in parts if p))


_TOPIC_SEPARATOR = re.compile(r"[;,]")


def _attributes(text: str) -> dict:
    # listmonk keeps custom fields in a JSON object; a malformed one is simply ignored.
    if not text.startswith("{"):
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return {k.lower(): v for k, v in data.items()} if isinstance(data, dict) else {}


def _text(value: object) -> str:
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return "" if value is None or isinstance(value, dict) else str(value).strip()


def _name(full: str, first: str, last: str) -> str | None:
    return clean_text(full or " ".join(part for part in (first, last) if part), 200)


def _zip(text: str) -> str | None:
    if not text:
        return None
    if text.isdigit() and 3 <= len(text) < 5:  # a spreadsheet ate the leading zeros
        text = text.zfill(5)
    match = _ZIP.fullmatch(text)
    if match is None:
        raise RowError(f"invalid ZIP code {text[:20]!r}")
    return match.group(1) + (f"-{match.group(2)}" if match.group(2) else "")


def _from_address(pattern: re.Pattern, address: str) -> str:
    matches = pattern.findall(address)
    if not matches:
        return ""
    last = matches[-1]
    return last[0] if isinstance(last, tuple) else last


def _state(text: str) -> str | None:
    if not text:
        return None
    if len(text) == 2 and text.isascii() and text.isalpha():  # the usual "ND": no lookup
        return text.upper()
    code = _US_STATES.get(" ".join(text.lower().split()), text.upper())
    if len(code) != 2 or not code.isalpha():
        raise RowError(f"invalid state {text[:30]!r} (use a two-letter code such as ND)")
    return code


def _frequency(text: str) -> str | None:
    if not text:
        return None
    word = text.lower()
    if word not in FREQUENCIES:
        raise RowError(f"invalid frequency {text[:20]!r} (one of {', '.join(FREQUENCIES)})")
    return word


def _intent(status: str, unsub_time: str, clean_time: str) -> str:
    if not (status or unsub_time or clean_time):  # a plain list: no status column at all
        return ACTIVE
    if unsub_time:
        return UNSUBSCRIBED
    if clean_time:
        return BOUNCED
    intent = _STATUS_WORDS.get(" ".join(status.lower().replace("_", " ").split()))
    if intent is None:
        raise RowError(f"unknown status {status[:30]!r}")
    return intent


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text)) if text else None
    except ValueError:
        return None


_TIME_FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y", "%m/%d/%y")


def parse_time(text: str) -> datetime | None:
    """An aware UTC datetime from ISO 8601 (Mailchimp, listmonk) or US ``m/d/Y`` text; naive
    times are taken as UTC (both exports write UTC). Unreadable text gives None."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        for fmt in _TIME_FORMATS:
            try:
                value = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


__all__ = ["HeaderMap", "RowData", "RowError", "parse_row", "parse_time", "split_topics"]
