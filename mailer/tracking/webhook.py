"""``POST /webhooks/sendgrid``: SendGrid's signed Event Webhook.

Order of checks, cheapest and least trusting first; nothing untrusted is parsed before the
signature holds:

1. no public key configured → 503 (SendGrid keeps retrying while someone fixes the setting);
2. body larger than ``settings.webhook_max_body`` → 413, read with a cap, never whole;
3. signature or timestamp header missing → 401; malformed, wrong, or a timestamp older
   (or further in the future) than ``MAILER_WEBHOOK_MAX_AGE`` seconds → 403 (``0`` turns the
   age check off);
4. body not UTF-8 JSON holding an array of objects, or nested deeper than 255 levels → 400;
5. storing fails (the database unreachable, restarting, locked) → 503 with ``Retry-After``,
   at once and without a trace, so SendGrid retries the post later (a replay is harmless:
   events are stored once by id); otherwise 204.

The signature is ECDSA P-256 / SHA-256 over ``timestamp + raw body``, checked with the
``sendgrid`` library's ``EventWebhook`` helper.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import gc
import json
import logging
import threading
import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from mailer.settings import Settings
from mailer.tracking.events import NestedTooDeep, needs_scrub, scrub, split_array
from mailer.tracking.ingest import ingest_with_retry
from mailer.tracking.logs import log_event

router = APIRouter()
logger = logging.getLogger(__name__)

SIGNATURE_HEADER = EventWebhookHeader.SIGNATURE
TIMESTAMP_HEADER = EventWebhookHeader.TIMESTAMP
PATH = "/webhooks/sendgrid"
#: Seconds SendGrid is asked to wait before posting a refused (503) batch again.
RETRY_AFTER = 30


class WebhookRefused(Exception):
    """A post we will not store; ``status`` is the HTTP answer, ``reason`` says why."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@functools.lru_cache(maxsize=8)
def _verifier(public_key: str) -> EventWebhook:
    """Parsing the key costs more than a verification; keep the parsed key per key text.
    Accepts the base64 text SendGrid shows, also pasted as a whole PEM block or wrapped."""
    body = public_key.replace("-----BEGIN PUBLIC KEY-----", "").replace(
        "-----END PUBLIC KEY-----", "")
    return EventWebhook("".join(body.split()))


def verify(settings: Settings, body: bytes, signature: str | None, timestamp: str | None,
           *, now: float | None = None) -> str:
    """Check a post's signature and age; returns the body as text.

    Raises WebhookRefused (401 missing headers, 403 bad signature/timestamp, 400 not UTF-8,
    503 no key configured).
    """
    key = settings.sendgrid_webhook_public_key
    if key is None or not key.get_secret_value().strip():
        raise WebhookRefused(503, "MAILER_SENDGRID_WEBHOOK_PUBLIC_KEY is not set")
    if not signature or not timestamp:
        raise WebhookRefused(401, "signature or timestamp header missing")
    _check_age(settings, timestamp, now)
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRefused(400, "body is not UTF-8") from None
    try:
        verifier = _verifier(key.get_secret_value())
    except (ValueError, TypeError):
        raise WebhookRefused(503, "MAILER_SENDGRID_WEBHOOK_PUBLIC_KEY is not a valid key") from None
    try:
        base64.b64decode(signature, validate=True)
        valid = verifier.verify_signature(payload, signature, timestamp)
    except (binascii.Error, ValueError, TypeError):
        valid = False
    if not valid:
        raise WebhookRefused(403, "signature does not match")
    return payload


def _check_age(settings: Settings, timestamp: str, now: float | None) -> None:
    text = timestamp.strip()
    if not text.isdigit() or len(text) > 12:
        raise WebhookRefused(403, "timestamp header is not a Unix time")
    if settings.webhook_max_age > 0:
        skew = abs((time.time() if now is None else now) - int(text))
        if skew > settings.webhook_max_age:
            raise WebhookRefused(403, "timestamp is outside MAILER_WEBHOOK_MAX_AGE")


def parse_events(payload: str) -> tuple[list[dict], list[str] | None]:
    """The posted JSON array: its event objects and, unless they had to be cleaned of text
    no database stores, each one's JSON text as posted (what the event log keeps).
    Raises WebhookRefused(400) for anything but an array of objects, and for a body nested
    deeper than ``events.MAX_DEPTH`` levels."""
    try:
        data, texts = split_array(payload)
    except NestedTooDeep as too_deep:
        raise WebhookRefused(400, f"body is {too_deep}") from None
    except json.JSONDecodeError:
        raise WebhookRefused(400, "body is not valid JSON") from None
    except ValueError:
        raise WebhookRefused(400, "body must be a JSON array of event objects") from None
    if not all(isinstance(item, dict) for item in data):
        raise WebhookRefused(400, "body must be a JSON array of event objects")
    if needs_scrub(payload):
        return scrub(data), None
    return data, texts


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise WebhookRefused(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WebhookRefused(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(PATH, status_code=204, include_in_schema=False)
async def sendgrid_webhook(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    try:
        body = await read_capped(request, settings.webhook_max_body)
        summary = await run_in_threadpool(_handle, request, settings, body)
    except WebhookRefused as refused:
        if refused.status in (401, 403, 503):  # forged, replayed or misconfigured: say so
            logger.warning("webhook post refused (%d): %s", refused.status, refused.reason)
        log_event("webhook_refused", outcome=refused.status, reason=refused.reason)
        headers = {"Retry-After": str(RETRY_AFTER)} if refused.status == 503 else None
        return JSONResponse({"detail": refused.reason}, status_code=refused.status,
                            headers=headers)
    log_event("webhook_batch", outcome="stored", received=summary["received"],
              stored=summary["stored"], duplicates=summary["duplicates"])
    return Response(status_code=204)


#: SQLite has one writer at a time. Posts handled by this process take turns here, where a
#: waiting thread wakes the moment the previous one commits, instead of in SQLite's busy
#: handler, which polls with growing sleeps. Signature checks and JSON parsing still overlap.
_SQLITE_WRITER = threading.Lock()


def _writer_turn(db):
    return _SQLITE_WRITER if db.dialect == "sqlite" else contextlib.nullcontext()


_GC_LOCK = threading.Lock()
_gc_holders = 0
_gc_was_enabled = False
_gc_paused_since = 0.0
#: Under a steady stream of overlapping posts the pause could last indefinitely, letting
#: cycles made elsewhere in the process pile up: collect once per this many seconds anyway.
GC_MAX_PAUSE = 2.0


@contextlib.contextmanager
def gc_paused():
    """Cyclic garbage collection off while a post is parsed and stored, back on (as it was)
    when the last concurrent post is done. A post allocates some 30,000 objects (decoded
    JSON, rows), and the collector's repeated scans of them cost ~5 µs per event, about an
    eighth of the whole path; those objects hold no cycles, so reference counting frees
    them anyway. Counted, since the setting is process-wide and posts overlap; a pause
    kept up by back-to-back posts still collects every ``GC_MAX_PAUSE`` seconds."""
    global _gc_holders, _gc_was_enabled, _gc_paused_since
    with _GC_LOCK:
        if _gc_holders == 0:
            _gc_was_enabled = gc.isenabled()
            _gc_paused_since = time.monotonic()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_was_enabled:
                gc.enable()
            elif _gc_was_enabled and time.monotonic() - _gc_paused_since > GC_MAX_PAUSE:
                _gc_paused_since = time.monotonic()
                gc.collect()


def _handle(request: Request, settings: Settings, body: bytes) -> dict:
    """Verify, parse and store (runs in a worker thread: crypto and SQL block)."""
    payload = verify(settings, body, request.headers.get(SIGNATURE_HEADER),
                     request.headers.get(TIMESTAMP_HEADER))
    with gc_paused():
        events, texts = parse_events(payload)
        return _store(request.app.state.db, settings, events, texts)


def _store(db, settings: Settings, events: list[dict], texts: list[str] | None) -> dict:
    """Raises WebhookRefused(503) when the database fails, so SendGrid retries."""
    try:
        with _writer_turn(db):
            return ingest_with_retry(db, events, settings, raw_texts=texts).to_dict()
    except SQLAlchemyError as exc:
        logger.error("webhook: storing %d events failed: %s", len(events),
                     str(getattr(exc, "orig", None) or exc).splitlines()[0])
        raise WebhookRefused(503, "events could not be stored; retry later") from None
