"""A transport whose answers come from a function, for tests whose subject is not HTTP.

In the spirit of httpx's ``MockTransport``: instead of patching, hand the engine a
``MockTransport(handler)``; ``handler(batch)`` decides each batch's answer — a list of
``RecipientResult`` (one per recipient, refusing some if it likes) or a raised
``TransportError`` subclass for the batch as a whole — and every batch handed over is kept
in ``batches`` for the test to read. Thread-safe: the engine sends several batches at once.

    transport = MockTransport()                       # accepts everyone
    transport = MockTransport(refuse({"bad@example.org": "mailbox unavailable"}))
    summary = send_campaign(db, settings, campaign_id, transport=transport)
    assert transport.emails() == [...]
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping

from mailer.transports.base import Batch, RecipientResult

Handler = Callable[[Batch], list[RecipientResult]]


def accept_all(batch: Batch) -> list[RecipientResult]:
    """Every recipient accepted, one provider message id for the batch (as SendGrid gives)."""
    message_id = f"mock-{next(_ids)}"
    return [RecipientResult(r, True, message_id) for r in batch.recipients]


def refuse(reasons: Mapping[str, str]) -> Handler:
    """A handler that refuses the addresses in ``reasons`` (with that reason), accepts the rest."""
    def handler(batch: Batch) -> list[RecipientResult]:
        results = accept_all(batch)
        for result in results:
            if result.recipient.email in reasons:
                result.accepted, result.provider_message_id = False, None
                result.error = reasons[result.recipient.email]
        return results
    return handler


def fail_batches(errors: Iterable[Exception], then: Handler = accept_all) -> Handler:
    """A handler that raises each of ``errors`` for one batch in turn, then answers as ``then``."""
    pending = list(errors)
    lock = threading.Lock()

    def handler(batch: Batch) -> list[RecipientResult]:
        with lock:
            error = pending.pop(0) if pending else None
        if error is not None:
            raise error
        return then(batch)
    return handler


class MockTransport:
    """A ``Transport`` that hands each batch to ``handler`` and records it."""

    name = "mock"

    def __init__(self, handler: Handler = accept_all):
        self.handler = handler
        self.batches: list[Batch] = []
        self.results: list[RecipientResult] = []
        self.closed = False
        self._lock = threading.Lock()

    def send(self, batch: Batch) -> list[RecipientResult]:
        with self._lock:
            self.batches.append(batch)
        results = self.handler(batch)
        with self._lock:
            self.results.extend(results)
        return results

    def close(self) -> None:
        self.closed = True

    def emails(self) -> list[str]:
        """Every address handed over, in order, repeats included (a repeat is a double send)."""
        with self._lock:
            return [r.email for b in self.batches for r in b.recipients]

    def accepted(self) -> list[str]:
        """Every address the handler accepted, repeats included."""
        with self._lock:
            return [r.recipient.email for r in self.results if r.accepted]


_ids = itertools.count(1)
