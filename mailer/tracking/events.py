"""One normalized ``DeliveryEvent`` for whatever the mail provider reports.

SendGrid's Event Webhook posts a JSON array of objects such as
``{"event": "bounce", "type": "blocked", "email": ..., "sg_event_id": ..., "timestamp": ...}``.
``from_sendgrid`` turns one such object into a ``DeliveryEvent`` whose ``type`` comes from the
closed set ``EVENT_TYPES`` via the mapping table ``SENDGRID_EVENT_TYPES``; everything the
provider said is kept in ``raw``. Normalizing never fails: an event we do not understand
becomes type ``unknown`` (it is still stored, so nothing a provider tells us is lost).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from mailer.storage.base import utcnow

QUEUED = "queued"
DELIVERED = "delivered"
DEFERRED = "deferred"
BOUNCED = "bounced"
BLOCKED = "blocked"
DROPPED = "dropped"
OPENED = "opened"
CLICKED = "clicked"
COMPLAINED = "complained"
UNSUBSCRIBED = "unsubscribed"
RESUBSCRIBED = "resubscribed"
UNKNOWN = "unknown"

#: The closed set of normalized event types.
EVENT_TYPES = (QUEUED, DELIVERED, DEFERRED, BOUNCED, BLOCKED, DROPPED, OPENED, CLICKED,
               COMPLAINED, UNSUBSCRIBED, RESUBSCRIBED, UNKNOWN)

#: The order events of one message happen in: breaks ties between events with the same
#: (whole-second) timestamp when a timeline is shown.
LIFECYCLE_ORDER = {kind: index for index, kind in enumerate(
    (QUEUED, DEFERRED, DELIVERED, BLOCKED, BOUNCED, DROPPED, OPENED, CLICKED, COMPLAINED,
     UNSUBSCRIBED, RESUBSCRIBED, UNKNOWN))}

#: SendGrid event name -> normalized type. ``bounce`` is refined by its ``type`` field in
#: ``sendgrid_type``: ``type: "blocked"`` is a temporary block (soft), not a hard bounce.
SENDGRID_EVENT_TYPES: dict[str, str] = {
    "processed": QUEUED,
    "delivered": DELIVERED,
    "deferred": DEFERRED,
    "bounce": BOUNCED,
    "blocked": BLOCKED,
    "dropped": DROPPED,
    "open": OPENED,
    "click": CLICKED,
    "spamreport": COMPLAINED,
    "unsubscribe": UNSUBSCRIBED,
    "group_unsubscribe": UNSUBSCRIBED,
    "group_resubscribe": RESUBSCRIBED,
}

#: Fields that explain why (first one present wins).
_REASON_FIELDS = ("reason", "response", "status", "url", "type")
#: Our own custom_args, echoed back by SendGrid as top-level keys of every event.
DELIVERY_ID_ARG = "delivery_id"
CAMPAIGN_ID_ARG = "campaign_id"


# Not frozen, though nothing may change one after normalizing: a frozen dataclass sets each
# field through object.__setattr__, which made construction 4 of the 8.5 µs that normalizing
# an event cost, and the webhook builds one per event (up to 1,000 per post).
@dataclass(slots=True)
class DeliveryEvent:
    """A provider event in the product's own terms (read-only by convention).

    ``event_id`` is unique per provider event (SendGrid ``sg_event_id``; a digest of the raw
    event when the provider gave none), so storing it twice is a no-op.
    """

    event_id: str
    type: str
    occurred_at: datetime
    email: str | None = None
    reason: str | None = None
    provider_message_id: str | None = None
    #: Our delivery id as echoed in custom_args (None when absent or not a number).
    delivery_id: int | None = None
    campaign_id: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    #: ``raw`` as the JSON text the provider posted, when known (stored as is).
    raw_json: str | None = None

    @property
    def message_id_prefix(self) -> str | None:
        """The part of ``sg_message_id`` before the first ``.``: the X-Message-Id the send
        API answered with, which the delivery engine stored as ``provider_message_id``."""
        if not self.provider_message_id:
            return None
        return self.provider_message_id.split(".", 1)[0] or None


def sendgrid_type(raw: dict[str, Any]) -> str:
    """The normalized type of one SendGrid event object (``unknown`` when unrecognized)."""
    name = raw.get("event")
    if not isinstance(name, str):
        return UNKNOWN
    kind = SENDGRID_EVENT_TYPES.get(name)
    if kind is not None and name != "bounce":  # the usual, already-canonical name
        return kind
    name = name.strip().lower()
    if name == "bounce" and str(raw.get("type", "")).strip().lower() == "blocked":
        return BLOCKED
    return SENDGRID_EVENT_TYPES.get(name, UNKNOWN)


def from_sendgrid(raw: dict[str, Any], *, received_at: datetime | None = None,
                  raw_json: str | None = None) -> DeliveryEvent:
    """Normalize one SendGrid event object (``raw_json``: its JSON text as posted, if known).
    Never raises for a dict; odd fields become None."""
    email = raw.get("email")
    email = (email.strip().lower() or None) if isinstance(email, str) else None
    message_id = raw.get("sg_message_id")
    return DeliveryEvent(
        event_id=_event_id(raw),
        type=sendgrid_type(raw),
        occurred_at=_timestamp(raw.get("timestamp")) or received_at or utcnow(),
        email=email,
        reason=_reason(raw),
        provider_message_id=message_id[:200] if isinstance(message_id, str) else None,
        delivery_id=_positive_int(raw.get(DELIVERY_ID_ARG)),
        campaign_id=_positive_int(raw.get(CAMPAIGN_ID_ARG)),
        raw=raw,
        raw_json=raw_json,
    )


def _event_id(raw: dict[str, Any]) -> str:
    event_id = raw.get("sg_event_id")
    if isinstance(event_id, str) and event_id.strip():
        return event_id.strip()[:200]
    # Older or hand-made events lack an id: the digest of the whole event is stable across
    # replays of the same body, which is all idempotency needs.
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=4096)
def _from_unix_seconds(value: int) -> datetime | None:
    """Cached: SendGrid's timestamps are whole seconds, so a batch repeats them a lot."""
    try:
        return datetime.fromtimestamp(value, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _timestamp(value: Any) -> datetime | None:
    if type(value) is int:  # what SendGrid sends; the checks below are for odd input
        return _from_unix_seconds(value)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        seconds = float(value)
        return datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _reason(raw: dict[str, Any]) -> str | None:
    for name in _REASON_FIELDS:
        value = raw.get(name)
        if value is None or (name == "type" and raw.get("event") != "bounce"):
            continue  # "type" only explains bounces
        if type(value) is str or type(value) is int:
            text = str(value).strip()
            if text:
                return text[:2000]
    return None


def _positive_int(value: Any) -> int | None:
    if type(value) is str and value.isascii() and value.isdigit():  # custom_args: strings
        number = int(value)
        return number if 0 < number < 2**63 else None
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value < 2**63 else None
    if isinstance(value, str) and value.strip().isdecimal():
        number = int(value.strip())
        return number if 0 < number < 2**63 else None
    return None


_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # what the json module skips between tokens

#: How deep a posted body may nest, its own array counting as one level: as deep as orjson's
#: encoder goes (so the compact path needs no check of its own), far past SendGrid's events
#: (four levels at most), and well short of Python's recursion limit, which the json module,
#: ``scrub`` and the event hash would otherwise hit on a hostile body.
MAX_DEPTH = 255
_CONTAINERS = (dict, list)


class NestedTooDeep(ValueError):
    """A JSON body nested deeper than ``MAX_DEPTH`` levels."""

    def __init__(self):
        super().__init__(f"nested deeper than {MAX_DEPTH} levels")


def split_array(text: str) -> tuple[list[Any], list[str]]:
    """The elements of the JSON array ``text``, each with the exact text it was written as
    (so a provider's event can be stored as posted, never re-serialized). Accepts and
    refuses what ``json.loads`` does for an array. Raises json.JSONDecodeError for text that
    is not JSON, ValueError for JSON that is not an array.

    Compact JSON, as SendGrid posts it, takes a fast path: orjson parses it and re-encodes
    each element, and when those texts joined by commas give back the body byte for byte
    they are the elements' own texts (anything orjson reads differently, such as an integer
    too large for 64 bits, a duplicate key or other spacing, fails that check). Any other
    body is split element by element with the standard library's scanner.

    A body nested deeper than ``MAX_DEPTH`` raises NestedTooDeep (a ValueError) instead,
    whatever json.loads would make of it."""
    fast = _split_compact(text)
    if fast is not None:
        return fast
    try:
        items, texts = _split_scanning(text)
    except RecursionError:  # the json module's C scanner gives up near the recursion limit
        raise NestedTooDeep() from None
    _check_depth(items)
    return items, texts


def _check_depth(items: list[Any]) -> None:
    """Raises NestedTooDeep when an array's ``items`` nest past ``MAX_DEPTH`` (the array is
    the first level). Walks one level at a time: no recursion for the input to exhaust."""
    level = [item for item in items if item.__class__ in _CONTAINERS]
    depth = 2
    while level:
        if depth > MAX_DEPTH:
            raise NestedTooDeep()
        below = []
        for value in level:
            children = value.values() if value.__class__ is dict else value
            below += [child for child in children if child.__class__ in _CONTAINERS]
        level, depth = below, depth + 1


def _split_compact(text: str) -> tuple[list[Any], list[str]] | None:
    try:
        items = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if type(items) is not list:
        return None
    dumps = orjson.dumps
    try:
        encoded = [dumps(item) for item in items]
    except orjson.JSONEncodeError:  # nested past MAX_DEPTH: the scanning path says so
        return None
    if b"[" + b",".join(encoded) + b"]" != text.strip(" \t\n\r").encode():
        return None
    return items, [e.decode() for e in encoded]


def _split_scanning(text: str) -> tuple[list[Any], list[str]]:
    skip = _WHITESPACE.match
    position = skip(text, 0).end()
    if text[position:position + 1] != "[":
        json.loads(text)  # raises json.JSONDecodeError unless it is JSON of another kind
        raise ValueError("not a JSON array")
    position = skip(text, position + 1).end()
    items: list[Any] = []
    texts: list[str] = []
    if text[position:position + 1] == "]":
        position += 1
    else:
        decode = _DECODER.raw_decode
        while True:
            item, end = decode(text, position)
            items.append(item)
            texts.append(text[position:end])
            position = skip(text, end).end()
            separator = text[position:position + 1]
            position = skip(text, position + 1).end()
            if separator == "]":
                break
            if separator != ",":
                raise json.JSONDecodeError("Expecting ',' or ']'", text, position - 1)
    if skip(text, position).end() != len(text):
        raise json.JSONDecodeError("Extra data", text, position)
    return items, texts


#: JSON escapes that decode to text PostgreSQL refuses to store: NUL, and UTF-16 surrogates
#: (valid pairs decode to one character and are harmless, so their escapes only cost a scan).
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def needs_scrub(json_text: str) -> bool:
    """Cheap check on a webhook body: could it decode to text that cannot be stored?"""
    return _SUSPECT_ESCAPE.search(json_text) is not None


def scrub(value: Any) -> Any:
    """A copy of decoded JSON with NUL removed and lone surrogates replaced by U+FFFD, in
    keys and values at any depth (PostgreSQL's text and jsonb refuse both; a batch holding
    one must not fail forever)."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", value)
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(item) for item in value]
    return value
