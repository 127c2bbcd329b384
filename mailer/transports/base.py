"""What crosses the line between rendering, the delivery engine and a transport.

A campaign is rendered once into a ``CompiledMessage`` whose subject, HTML and text contain
placeholders; each ``Recipient`` carries the values for those placeholders (already escaped for
their context) and its own headers (``List-Unsubscribe``). The delivery engine groups
recipients into a ``Batch`` and hands it to a ``Transport``; the transport answers with one
``RecipientResult`` per recipient or raises a ``TransportError`` (see
``mailer.transports.errors``) for the batch as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CompiledMessage:
    subject: str
    html: str
    text: str
    from_email: str
    from_name: str
    reply_to: str | None = None
    campaign_id: int | None = None
    #: Headers shared by every recipient.
    headers: dict[str, str] = field(default_factory=dict)
    categories: tuple[str, ...] = ()


# Recipient and RecipientResult are made once per person per send (a million times for a
# large list), so they are plain slotted dataclasses: a frozen one costs ~4x as much to build.
# Treat them as immutable all the same.
@dataclass(slots=True)
class Recipient:
    email: str
    name: str | None = None
    delivery_id: int | None = None
    subscriber_id: int | None = None
    #: placeholder -> value, each value escaped for the part it appears in.
    substitutions: dict[str, str] = field(default_factory=dict)
    #: Per-recipient headers (List-Unsubscribe, List-Unsubscribe-Post).
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Batch:
    message: CompiledMessage
    recipients: list[Recipient]


@dataclass(slots=True)
class RecipientResult:
    recipient: Recipient
    accepted: bool
    provider_message_id: str | None = None
    error: str | None = None


class Transport(Protocol):
    """Hands a batch to a mail system. Must not retry: retries belong to the delivery engine.

    ``send`` returns one result per recipient (a refused recipient fails alone) or raises a
    ``TransportError`` subclass when the batch as a whole was not handed off.
    """

    name: str

    def send(self, batch: Batch) -> list[RecipientResult]: ...

    def close(self) -> None: ...
