"""How a transport says a batch was not handed off (as a whole).

    mailer.errors.TransportError
    ├── TemporaryFailure      worth retrying: 5xx, connection refused, timeout while connecting
    │   ├── RateLimited       429; ``reset_at`` is when the provider takes requests again
    │   └── AmbiguousFailure  the request went out but no answer came back (read timeout,
    │                         connection reset while waiting): it MAY have been accepted, so the
    │                         engine must not blindly resend it (the rows become ``in_doubt``)
    ├── DiskFull              the transport's own disk is full (the outbox): ``done`` holds what
    │                         it wrote; the rest was certainly not handed off. The engine waits
    │                         for space with backoff, as for a full database disk
    └── PermanentFailure      retrying the same request cannot help
        ├── AuthFailure       401/403: wrong or revoked key, missing scope; pause at once
        ├── BadRequest        400: the payload was refused; ``errors`` holds the provider's
        │                     messages with their field hints (``personalizations.3.to.0.email``)
        └── PayloadTooLarge   413: the request is over the provider's size limit

Transports never retry; the delivery engine decides what each failure means for a campaign.
Every message is one line and never contains a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailer.errors import TransportError

__all__ = [
    "AmbiguousFailure", "AuthFailure", "BadRequest", "DiskFull", "FieldError", "PayloadTooLarge",
    "PermanentFailure", "RateLimited", "TemporaryFailure", "TransportError",
]


class TemporaryFailure(TransportError):
    """The batch was not accepted and the same request may succeed later.

    A transport that handles recipients one by one (SMTP) may have finished some before the
    failure: those results are in ``done``; ``in_doubt`` lists any it was transmitting when
    the connection dropped. Everything else in the batch was certainly not handed off.
    """

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status
        self.done: list = []
        self.in_doubt: list = []


class RateLimited(TemporaryFailure):
    """HTTP 429. ``reset_at`` (aware UTC) comes from ``X-RateLimit-Reset`` when present."""

    def __init__(self, message: str, *, reset_at: datetime | None = None):
        super().__init__(message, status=429)
        self.reset_at = reset_at


class AmbiguousFailure(TemporaryFailure):
    """The request was sent but its answer was lost: the provider may have accepted it."""


class DiskFull(TransportError):
    """No space left where the transport writes. ``done`` lists the results of the recipients
    written before it ran out; nothing else of the batch was handed off."""

    def __init__(self, message: str, *, done: list | None = None):
        super().__init__(message)
        self.done: list = list(done or [])


class PermanentFailure(TransportError):
    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class AuthFailure(PermanentFailure):
    """HTTP 401/403 (or an SMTP login refusal): nothing will go out until a person fixes it."""


@dataclass(frozen=True, slots=True)
class FieldError:
    message: str
    field: str | None = None
    help: str | None = None


class BadRequest(PermanentFailure):
    """HTTP 400 with the provider's ``errors`` list."""

    def __init__(self, message: str, *, errors: list[FieldError] | None = None,
                 status: int = 400):
        super().__init__(message, status=status)
        self.errors = errors or []

    @property
    def about_recipients(self) -> bool:
        """True when every error points into ``personalizations`` (some recipient is bad), so
        splitting the batch can isolate the culprits; False for message-wide problems."""
        return bool(self.errors) and all(
            (e.field or "").startswith("personalizations") for e in self.errors
        )


class PayloadTooLarge(PermanentFailure):
    """HTTP 413."""
