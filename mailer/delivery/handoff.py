"""One batch's trip to the transport, run on a pool thread (never touches the database).

``deliver(claim)`` personalizes the claimed rows, hands them to the transport with bounded
retries (tenacity; see ``pacing.RetryWait``), isolates recipients a provider refuses (a 400
about personalizations is bisected until the bad addresses stand alone) and returns an
``Outcome`` saying, per row, what the writer thread must record:

- results: accepted (with the provider's message id) or failed (with the provider's reason);
- in_doubt: rows whose request went out without an answer: never retried here;
- everything else in the claim was certainly not handed off and goes back to ``pending``;
- disk_full: the transport's disk is full (the outbox); the sender waits for space.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_when_event_set

from mailer.delivery.claims import Claim
from mailer.delivery.pacing import InFlightWindow, RateLimiter, RetryWait
from mailer.settings import Settings
from mailer.transports.base import Batch, CompiledMessage, Recipient, RecipientResult, Transport
from mailer.transports.errors import (
    AmbiguousFailure,
    AuthFailure,
    BadRequest,
    DiskFull,
    PayloadTooLarge,
    RateLimited,
    TemporaryFailure,
)

log = logging.getLogger("mailer.delivery")


@dataclass
class Outcome:
    claim: Claim
    #: Set when every row was accepted under one message id (one UPDATE by batch id).
    all_accepted: bool = False
    message_id: str | None = None
    #: (delivery id, accepted, provider message id, error) for rows with a final answer.
    results: list[tuple[int, bool, str | None, str | None]] = field(default_factory=list)
    in_doubt: list[int] = field(default_factory=list)
    in_doubt_reason: str = ""
    #: Why the rest went back to pending (None when nothing did).
    release_reason: str | None = None
    #: Set when the campaign must stop (bad key, message-wide refusal, retries exhausted).
    pause_reason: str | None = None
    #: Set when the transport's disk is full (what it says): the sender holds off claiming
    #: with backoff until a batch goes through again. Never journaled.
    disk_full: str | None = None

    @property
    def accepted(self) -> int:
        if self.all_accepted:
            return len(self.claim.rows)
        return sum(1 for r in self.results if r[1])

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r[1])


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, TemporaryFailure) and not isinstance(exc, AmbiguousFailure)


class Handoff:
    """Shared by the pool threads of one send; ``halt`` stops retries at once.

    ``deliver`` is the one place that decides a batch's outcome means pausing the campaign
    (``Outcome.pause_reason``): refused credentials, a message the provider refuses, retries
    run out, or MAILER_MAX_CONSECUTIVE_ERRORS failed requests in a row across all threads.
    """

    def __init__(self, settings: Settings, transport: Transport, message: CompiledMessage,
                 make_recipient: Callable[..., Recipient], limiter: RateLimiter,
                 halt: threading.Event, window: InFlightWindow | None = None):
        self.settings, self.transport, self.message = settings, transport, message
        self.make_recipient, self.limiter, self.halt = make_recipient, limiter, halt
        self.window = window or InFlightWindow(settings.concurrency, settings.concurrency)
        self.consecutive_errors = 0
        self._errors_lock = threading.Lock()
        self._wait = RetryWait(settings.retry_backoff, settings.retry_backoff_max)

    # -- the pool thread's entry point ---------------------------------------------------------
    def deliver(self, claim: Claim) -> Outcome:
        out = Outcome(claim)
        done: list[RecipientResult] = []
        doubt: list[Recipient] = []
        try:
            make = self.make_recipient
            recipients = [make(email=e, name=n, subscriber_id=s, delivery_id=i)
                          for i, e, s, n in claim.rows]
        except Exception as exc:  # nothing was handed off: a bug in personalization
            log.exception("cannot personalize batch %s", claim.batch_id)
            out.pause_reason = f"cannot personalize: {type(exc).__name__}: {exc}"
            out.release_reason = f"not sent: {out.pause_reason}"
            return out
        try:
            self._isolate(recipients, done, doubt)
        except AmbiguousFailure as exc:
            out.in_doubt_reason = f"in doubt: {exc}"
            out.release_reason = "not sent: an earlier part of its batch went in doubt"
        except AuthFailure as exc:
            out.pause_reason = f"{exc}; fix the credentials, then resume the campaign"
            out.release_reason = "not sent: the provider refused our credentials"
        except TemporaryFailure as exc:
            out.release_reason = f"not sent: {exc}"
            if not self._too_many_errors() and not self.halt.is_set():
                out.pause_reason = (f"paused after {self.settings.retry_attempts} failed "
                                    f"attempts: {exc}")
        except (BadRequest, PayloadTooLarge) as exc:
            out.pause_reason = f"the provider refuses this message itself: {exc}"
            out.release_reason = f"not sent: {exc}"
        except DiskFull as exc:  # what was written is in ``done``; the rest never left
            out.disk_full = str(exc)
            out.release_reason = f"not sent: {exc}"
        except Exception as exc:  # a bug or an I/O error: stop, keep what we know
            log.exception("batch %s failed unexpectedly", claim.batch_id)
            out.pause_reason = f"internal error while sending: {type(exc).__name__}: {exc}"
            out.in_doubt_reason = f"in doubt: {type(exc).__name__}: {exc}"
            # The transport may have handed off anything not reported as done: keep it safe.
            reported = {r.recipient.delivery_id for r in done}
            doubt = [Recipient(email=e, delivery_id=i) for i, e, _s, _n in claim.rows
                     if i not in reported]
        self._summarize(out, done, doubt)
        if out.pause_reason is None and self._too_many_errors():
            last = out.release_reason or out.in_doubt_reason or "failed"
            out.pause_reason = (f"{self.consecutive_errors} consecutive failed requests "
                                f"(MAILER_MAX_CONSECUTIVE_ERRORS); last: {last}")
        return out

    def _summarize(self, out: Outcome, done: list[RecipientResult],
                   doubt: list[Recipient]) -> None:
        rows = out.claim.rows
        if (out.release_reason is None and not doubt and len(done) == len(rows)
                and all(r.accepted for r in done)
                and len({r.provider_message_id for r in done}) == 1):
            out.all_accepted, out.message_id = True, done[0].provider_message_id
            return
        out.results = [(r.recipient.delivery_id, r.accepted, r.provider_message_id, r.error)
                       for r in done]
        out.in_doubt = [r.delivery_id for r in doubt]
        if out.in_doubt and not out.in_doubt_reason:
            out.in_doubt_reason = "in doubt: the connection dropped while it was being sent"

    # -- isolation of refused recipients -------------------------------------------------------
    def _isolate(self, recipients: list[Recipient], done: list, doubt: list) -> None:
        """Send; on a 400 about recipients (or a 413) split in halves until the culprits stand
        alone, each failed with the provider's own message."""
        try:
            self._send_with_retries(recipients, done, doubt)
        except (BadRequest, PayloadTooLarge) as exc:
            if isinstance(exc, BadRequest) and not exc.about_recipients:
                raise
            if len(recipients) == 1:
                if isinstance(exc, PayloadTooLarge):
                    raise  # even one person's copy is too big: the message itself is
                done.append(RecipientResult(recipients[0], False, error=_refusal(exc)))
                return
            middle = len(recipients) // 2
            self._isolate(recipients[:middle], done, doubt)
            self._isolate(recipients[middle:], done, doubt)

    def _send_with_retries(self, recipients: list[Recipient], done: list, doubt: list) -> None:
        remaining = recipients
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=(stop_after_attempt(self.settings.retry_attempts)
                  | stop_when_event_set(self.halt) | self._too_many_errors),
            wait=self._wait, sleep=self.halt.wait, reraise=True,
        )
        for attempt in retrying:
            with attempt:
                sent_at = time.monotonic()
                try:
                    results = self.transport.send(Batch(self.message, remaining))
                except DiskFull as exc:  # not the provider's fault: the sender waits
                    done.extend(exc.done)
                    raise
                except TemporaryFailure as exc:
                    self._note_error(exc)
                    remaining = _take_partial(exc, remaining, done, doubt)
                    if isinstance(exc, AmbiguousFailure) and remaining:
                        # What is left never left us: retrying it is safe.
                        raise TemporaryFailure(str(exc)) from exc
                    raise
                self.window.answered(time.monotonic() - sent_at)
                self._note_success()
                done.extend(results)

    def _too_many_errors(self, _state=None) -> bool:
        """Across all threads: the provider keeps failing, so stop retrying and pause."""
        return self.consecutive_errors >= self.settings.max_consecutive_errors

    def _note_error(self, exc: TemporaryFailure) -> None:
        with self._errors_lock:
            self.consecutive_errors += 1
        if isinstance(exc, RateLimited):
            self.window.throttled()
            if exc.reset_at is not None:
                self.limiter.hold_until(exc.reset_at)
        log.warning("batch hand-off failed (%s); retrying if allowed", exc)

    def _note_success(self) -> None:
        with self._errors_lock:
            self.consecutive_errors = 0


def _take_partial(exc: TemporaryFailure, remaining: list[Recipient], done: list,
                  doubt: list) -> list[Recipient]:
    """Keep what a per-recipient transport finished before failing; return the rest (which
    was certainly not handed off). A whole request without an answer is all in doubt."""
    if isinstance(exc, AmbiguousFailure) and not (exc.done or exc.in_doubt):
        doubt.extend(remaining)
        return []
    done.extend(exc.done)
    doubt.extend(exc.in_doubt)
    handled = {id(r.recipient) for r in exc.done} | {id(r) for r in exc.in_doubt}
    return [r for r in remaining if id(r) not in handled]


def _refusal(exc: BadRequest | PayloadTooLarge) -> str:
    errors = getattr(exc, "errors", None) or []
    if errors:
        first = errors[0]
        where = f" ({first.field})" if first.field else ""
        return f"refused by the provider: {first.message}{where}"
    return f"refused by the provider: {exc}"
