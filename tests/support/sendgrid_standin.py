"""A SendGrid v3 Mail Send stand-in: a real HTTP server on 127.0.0.1 for tests and the bench.

It validates like the v3 API (Bearer auth → 401; JSON body, ``from``, ``subject``,
``content``; 1..1000 personalizations with 1..1000 recipients, at most 1000 addresses per
request, each unique across the request → 400 with SendGrid-shaped
``{"errors": [{"message", "field", "help"}]}``; bodies over 20 MB → 413), answers 202 with an
``X-Message-Id`` and records every accepted recipient (email, custom_args, substitutions).

Faults are injected through Python (``inject``) or HTTP (``POST /_standin/faults``, for a
stand-in in another process): the next N requests answer 429 with ``X-RateLimit-Reset``,
500/503, have their connection reset after the body was read (the client cannot tell whether
it was accepted), or are delayed. ``latency_ms`` delays every request.

With ``webhook_url`` set it posts signed Event Webhook batches (``processed`` per accepted
recipient, custom_args at the top level, ECDSA P-256 over timestamp + body, headers
``X-Twilio-Email-Event-Webhook-Signature`` / ``-Timestamp``). ``public_key_b64`` is what
SendGrid would show in its settings page.

Everything is bounded: the server stops by itself after ``max_seconds``.

Run it alone: ``python -m tests.support.sendgrid_standin --port 8025 --api-key K``.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import queue
import re
import secrets
import socket
import struct
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

MAX_BODY = 20 * 1024 * 1024
MAX_RECIPIENTS = 1000
HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
_EMAIL = re.compile(r"^[^@\s\"<>,;]+@[^@\s\"<>,;]+\.[A-Za-z0-9-]{2,}$")


@dataclass
class Fault:
    kind: str  # "429" | "500" | "503" | "reset" | "delay"
    remaining: int
    reset_in: float = 1.0
    delay_ms: int = 0


@dataclass
class Accepted:
    email: str
    custom_args: dict
    substitutions: dict
    message_id: str
    headers: dict = field(default_factory=dict)


class _Invalid(Exception):
    def __init__(self, message: str, field: str | None, status: int = 400):
        super().__init__(message)
        self.field, self.status = field, status


class SendGridStandIn:
    """Start with ``start()`` (or as a context manager); ``url`` is the MAILER_SENDGRID_HOST."""

    def __init__(self, *, api_key: str = "SG.test-key", latency_ms: int = 0,
                 record: str = "full", webhook_url: str | None = None,
                 max_seconds: float = 900, port: int = 0):
        self.api_key = api_key
        self.latency_ms = latency_ms
        self.record = record  # "full" keeps every recipient; "count" only counts (bench)
        self.webhook_url = webhook_url
        self.max_seconds = max_seconds
        self.accepted: list[Accepted] = []
        self.accepted_count = 0
        self.requests = 0
        self.statuses: collections.Counter = collections.Counter()
        self.faults: collections.deque[Fault] = collections.deque()
        self._lock = threading.Lock()
        self._private_key = ec.generate_private_key(ec.SECP256R1())
        self._events: queue.Queue = queue.Queue()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> SendGridStandIn:
        serve = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                 daemon=True, name="sendgrid-standin")
        timer = threading.Timer(self.max_seconds, self.stop)
        timer.daemon = True
        poster = threading.Thread(target=self._post_events, daemon=True, name="standin-webhook")
        for thread in (serve, timer, poster):
            thread.start()
        self._threads = [serve, poster]
        self._timer = timer
        return self

    def stop(self) -> None:
        self._timer.cancel()
        self._events.put(None)
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SendGridStandIn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- test API --------------------------------------------------------------------------
    def inject(self, kind: str, count: int = 1, *, reset_in: float = 1.0,
               delay_ms: int = 0) -> None:
        """Make the next ``count`` requests fail with ``kind`` (429, 500, 503, reset, delay)."""
        if kind not in {"429", "500", "503", "reset", "delay"}:
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self.faults.append(Fault(kind, count, reset_in, delay_ms))

    def emails(self) -> list[str]:
        with self._lock:
            return [a.email for a in self.accepted]

    def delivery_counts(self) -> collections.Counter:
        """delivery_id -> how many times it was accepted (exactly-once checks)."""
        with self._lock:
            return collections.Counter(a.custom_args.get("delivery_id") for a in self.accepted)

    @property
    def public_key_b64(self) -> str:
        der = self._private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(der).decode("ascii")

    def sign(self, timestamp: str, body: bytes) -> str:
        """The Event Webhook signature SendGrid would send for this timestamp and body."""
        signature = self._private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode("ascii")

    def processed_events(self, accepted: list[Accepted]) -> list[dict]:
        """SendGrid ``processed`` events for accepted recipients (custom_args at top level)."""
        now = int(time.time())
        return [{"email": a.email, "timestamp": now, "event": "processed",
                 "sg_event_id": secrets.token_urlsafe(16),
                 "sg_message_id": f"{a.message_id}.filter0001.{i}.0",
                 "smtp-id": f"<{a.message_id}@standin>", **a.custom_args}
                for i, a in enumerate(accepted)]

    def signed_post(self, url: str, events: list[dict]) -> int:
        body = json.dumps(events).encode()
        timestamp = str(int(time.time()))
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": self.sign(timestamp, body),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        })
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status

    # -- request handling ------------------------------------------------------------------
    def _next_fault(self) -> Fault | None:
        with self._lock:
            if not self.faults:
                return None
            fault = self.faults[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                self.faults.popleft()
            return fault

    def handle_send(self, auth: str | None, body: bytes) -> tuple[int, dict, dict | None]:
        """(status, headers, json body) for one POST /v3/mail/send."""
        if auth != f"Bearer {self.api_key}":
            return 401, {}, _errors("The provided authorization grant is invalid, expired, "
                                    "or revoked", None)
        try:
            # orjson: strict like the real API's parser, and about a third less of this
            # process's CPU per 1000-recipient request: CPU it shares with the sender that
            # the benchmarks measure on the same cores.
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return 400, {}, _errors("Bad Request", None)
        try:
            _validate(payload)
        except _Invalid as exc:
            return exc.status, {}, _errors(str(exc), exc.field)
        message_id = secrets.token_urlsafe(16)
        self._record(payload, message_id)
        return 202, {"X-Message-Id": message_id}, None

    def _record(self, payload: dict, message_id: str) -> None:
        personalizations = payload["personalizations"]
        if self.record == "count":
            with self._lock:
                self.accepted_count += sum(len(p["to"]) for p in personalizations)
            return
        rows = [Accepted(to["email"], p.get("custom_args") or {}, p.get("substitutions") or {},
                         message_id, p.get("headers") or {})
                for p in personalizations for to in p["to"]]
        with self._lock:
            self.accepted.extend(rows)
            self.accepted_count += len(rows)
        if self.webhook_url:
            self._events.put(rows)

    def _post_events(self) -> None:
        while True:
            rows = self._events.get()
            if rows is None:
                return
            for _ in range(3):  # bounded: a receiver that is down loses events, like SendGrid's
                try:
                    self.signed_post(self.webhook_url, self.processed_events(rows))
                    break
                except OSError:
                    time.sleep(0.2)

    def snapshot(self) -> dict:
        with self._lock:
            return {"requests": self.requests, "accepted": self.accepted_count,
                    "statuses": dict(self.statuses)}


def _errors(message: str, field: str | None) -> dict:
    return {"errors": [{"message": message, "field": field, "help": HELP}]}


def _validate(payload: Any) -> None:
    """Raises _Invalid with SendGrid's wording for the first problem found."""
    if not isinstance(payload, dict):
        raise _Invalid("Bad Request", None)
    sender = payload.get("from")
    if not isinstance(sender, dict) or not sender.get("email"):
        raise _Invalid("The from object must be provided for every email send. It is an object "
                       "that requires the email parameter, but may also contain a name "
                       "parameter.", "from")
    if not _EMAIL.match(str(sender["email"])):
        raise _Invalid("The from email does not contain a valid address.", "from.email")
    personalizations = payload.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        raise _Invalid("The personalizations field is required and must have at least one "
                       "personalization.", "personalizations")
    if len(personalizations) > MAX_RECIPIENTS:
        raise _Invalid("The personalizations field must have 1000 or fewer items.",
                       "personalizations")
    templated = bool(payload.get("template_id"))
    _validate_personalizations(personalizations, payload.get("subject"), templated)
    if not templated:
        _validate_content(payload.get("content"))


def _validate_personalizations(personalizations: list, subject: Any, templated: bool) -> None:
    seen: set[str] = set()
    for i, item in enumerate(personalizations):
        if not isinstance(item, dict):
            raise _Invalid("Bad Request", f"personalizations.{i}")
        to = item.get("to")
        if not isinstance(to, list) or not to:
            raise _Invalid("The to array is required for all personalization objects, and "
                           "must have at least one email object with a valid email address.",
                           f"personalizations.{i}.to")
        for j, address in enumerate(to):
            email = address.get("email") if isinstance(address, dict) else None
            if not isinstance(email, str) or not _EMAIL.match(email):
                raise _Invalid("Does not contain a valid address.",
                               f"personalizations.{i}.to.{j}.email")
            key = email.lower()
            if key in seen:
                raise _Invalid("Each email address in the personalization block should be "
                               "unique between to, cc, and bcc. We found the first duplicate "
                               f"instance of [{email}] in the personalizations.{i}.to field.",
                               f"personalizations.{i}.to")
            seen.add(key)
        if len(seen) > MAX_RECIPIENTS:
            raise _Invalid("The total number of recipients must be less than 1000. This "
                           "includes all recipients defined within the to, cc, and bcc "
                           "parameters, across each object that you include in the "
                           "personalizations array.", "personalizations")
        if not templated and not subject and not item.get("subject"):
            raise _Invalid("The subject is required. You can get around this requirement if "
                           "you use a template with a subject defined or if every single "
                           "personalization has a subject defined.", "subject")
        for name, value in (item.get("custom_args") or {}).items():
            if not isinstance(value, str):
                raise _Invalid(f"Invalid type. Expected: string, given: {type(value).__name__}.",
                               f"personalizations.{i}.custom_args.{name}")


def _validate_content(content: Any) -> None:
    if not isinstance(content, list) or not content:
        raise _Invalid("Unless a valid template_id is provided, the content parameter is "
                       "required. There must be at least one defined content block.", "content")
    for i, block in enumerate(content):
        if not isinstance(block, dict) or not block.get("type") or not block.get("value"):
            raise _Invalid("The content value must be a string at least one character in "
                           "length.", f"content.{i}.value")
    if len(content) > 1 and content[0].get("type") != "text/plain":
        raise _Invalid("If present, text/plain content must be first, followed by any other "
                       "content.", "content.0.type")


def _handler_for(standin: SendGridStandIn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_POST(self) -> None:  # noqa: N802
            if self.path == "/_standin/faults":
                return self._control()
            if self.path != "/v3/mail/send":
                return self._answer(404, {}, _errors("Not Found", None))
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                # Read (and drop) what the client is sending, so it hears the 413 instead of
                # a broken pipe; beyond a sane bound just hang up.
                self.close_connection = True
                remaining = length if length <= 4 * MAX_BODY else 0
                while remaining > 0:
                    chunk = self.rfile.read(min(1 << 20, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                return self._answer(413, {}, _errors("Payload Too Large", None))
            body = self.rfile.read(length)
            with standin._lock:
                standin.requests += 1
            fault = standin._next_fault()
            delay = standin.latency_ms + (fault.delay_ms if fault and fault.kind == "delay" else 0)
            if delay:
                time.sleep(delay / 1000)
            if fault is not None and fault.kind != "delay":
                return self._fault(fault)
            status, headers, data = standin.handle_send(self.headers.get("Authorization"), body)
            self._answer(status, headers, data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/_standin/stats":
                return self._answer(200, {}, standin.snapshot())
            self._answer(404, {}, _errors("Not Found", None))

        def _control(self) -> None:
            data = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            if "latency_ms" in data:
                standin.latency_ms = int(data["latency_ms"])
            for fault in data.get("faults", []):
                standin.inject(fault["kind"], int(fault.get("count", 1)),
                               reset_in=float(fault.get("reset_in", 1.0)),
                               delay_ms=int(fault.get("delay_ms", 0)))
            self._answer(200, {}, standin.snapshot())

        def _fault(self, fault: Fault) -> None:
            if fault.kind == "reset":
                # RST instead of FIN: the client sees "connection reset" while waiting.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.close_connection = True
                with standin._lock:
                    standin.statuses["reset"] += 1
                self.connection.close()
                return
            if fault.kind == "429":
                reset = str(int(time.time() + fault.reset_in + 0.999))
                return self._answer(429, {"X-RateLimit-Limit": "600",
                                          "X-RateLimit-Remaining": "0",
                                          "X-RateLimit-Reset": reset},
                                    _errors("too many requests", None))
            self._answer(int(fault.kind), {}, _errors("Internal server error", None))

        def _answer(self, status: int, headers: dict, data: dict | None) -> None:
            body = b"" if data is None else json.dumps(data).encode()
            with standin._lock:
                standin.statuses[str(status)] += 1
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                self.close_connection = True

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="SG.test-key")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--record", default="count", choices=["full", "count"])
    parser.add_argument("--max-seconds", type=float, default=900)
    args = parser.parse_args()
    standin = SendGridStandIn(api_key=args.api_key, latency_ms=args.latency_ms,
                              record=args.record, max_seconds=args.max_seconds, port=args.port)
    standin.start()
    print(standin.url, flush=True)
    standin._threads[0].join()


if __name__ == "__main__":
    main()
