"""One-off messages: a campaign's test copies and the system emails (confirmation, welcome).

Beside the campaign engine, and the only other place that hands mail to a transport. Every
face sends one-offs through ``send_one_off``: the same message building (``make_test_copy``,
``system_message``), the same sample-recipient rule (``test_recipients``) and the same record
of each hand-off (one ``oneoff`` line in the structured event log, as the engine writes one
per batch). One-offs have no delivery rows: nothing here counts towards a campaign.

    message = make_test_copy(compile_for(session, campaign, settings))
    results = send_one_off(message, test_recipients(session, ["a@x.gov"]), settings, signer)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.campaigns.content import compile_for
from mailer.campaigns.models import Campaign
from mailer.errors import InvalidInput, NotFound
from mailer.render import PersonalizedMessage, Personalizer, compile_system_message, personalize
from mailer.settings import Settings
from mailer.tracking.logs import log_event
from mailer.transports import get_transport
from mailer.transports.base import Batch, CompiledMessage, RecipientResult, Transport
from subscribers.addresses import normalize_email
from subscribers.models import Subscriber
from subscribers.service import find_by_email

log = logging.getLogger("mailer.delivery")
#: Who a preview or a test copy addressed to no subscriber is personalized for.
SAMPLE_EMAIL = "subscriber@example.com"
SAMPLE_NAME = "Pat Sample"
#: A test goes to a handful of staff, not to a list.
MAX_TEST_ADDRESSES = 10


@dataclass(frozen=True)
class Person:
    """Someone a one-off goes to. ``subscriber_id`` None: links carry a token matching nobody.
    ``confirm_url``: their own confirmation link, for a message rendered with
    ``render.CONFIRM_LINK`` (one confirmation email batched for many people)."""

    email: str
    name: str | None = None
    subscriber_id: int | None = None
    confirm_url: str | None = None


SAMPLE = Person(SAMPLE_EMAIL, SAMPLE_NAME)


def make_test_copy(message: CompiledMessage) -> CompiledMessage:
    """The message with "[TEST]" in front of its subject and no campaign id (so neither the
    outbox file name, SendGrid's custom args nor any event ties it to the real send)."""
    return dataclasses.replace(message, subject=f"[TEST] {message.subject}", campaign_id=None,
                               categories=("test",))


def system_message(template: str, settings: Settings, *, subject: str,
                   context: dict[str, Any]) -> CompiledMessage:
    """A system email (``confirm_subscription``, ``welcome``, …) rendered for one person."""
    return compile_system_message(template, settings, subject=subject, context=context)


def test_recipients(session: Session, addresses: Sequence[str]) -> list[Person]:
    """The people a test copy goes to: at most ``MAX_TEST_ADDRESSES`` valid addresses, each
    personalized as the subscriber with that address (it is their own inbox, so their own
    name and links), else as the sample person at that address with links that match nobody.

    Raises InvalidInput for no address, too many, or one that cannot receive mail.
    """
    wanted = [a.strip() for a in addresses if a and a.strip()]
    if not wanted:
        raise InvalidInput("give at least one address for the test")
    if len(wanted) > MAX_TEST_ADDRESSES:
        raise InvalidInput(f"a test goes to at most {MAX_TEST_ADDRESSES} addresses")
    normalized = list(dict.fromkeys(normalize_email(a) for a in wanted))  # InvalidEmail
    known = {s.email: s for s in session.scalars(
        select(Subscriber).where(Subscriber.email.in_(normalized)))}
    return [Person(e, known[e].name, known[e].id) if e in known else Person(e, SAMPLE_NAME)
            for e in normalized]


def subscriber_for_preview(session: Session, email: str | None) -> Person:
    """Who a preview is personalized for: the subscriber with ``email``, or the sample person
    when no address is given. Raises NotFound when no subscriber has the address."""
    if email is None:
        return SAMPLE
    row = find_by_email(session, email)
    if row is None:
        raise NotFound(f"no subscriber with address {email}")
    return Person(row.email, row.name, row.id)


def send_one_off(message: CompiledMessage, people: Sequence[Person], settings: Settings,
                 signer, *, transport: Transport | None = None,
                 kind: str = "test") -> list[RecipientResult]:
    """Personalize ``message`` for each person and hand them to the transport as one batch;
    returns the transport's answer per person, each also written to the event log.

    ``transport`` defaults to the configured one (opened and closed here). Raises the
    transport's errors (TransportError and subclasses) when the hand-off itself fails.
    """
    personalizer = Personalizer(settings, signer, None)
    recipients = [personalizer.recipient(email=p.email, name=p.name, subscriber_id=p.subscriber_id,
                                         confirm_url=p.confirm_url) for p in people]
    own = transport is None
    transport = transport or get_transport(settings)
    try:
        results = transport.send(Batch(message, recipients))
    finally:
        if own:
            transport.close()
    for result in results:
        log_event("oneoff", kind=kind, template=message.categories[0] if message.categories
                  else None, to=result.recipient.email,
                  subscriber=result.recipient.subscriber_id, accepted=result.accepted,
                  message_id=result.provider_message_id, reason=result.error)
    return results


def refused(results: Sequence[RecipientResult]) -> list[str]:
    """The addresses the transport refused."""
    return [r.recipient.email for r in results if not r.accepted]


def personalized_copy(message: CompiledMessage, person: Person, settings: Settings,
                      signer) -> PersonalizedMessage:
    """``message`` as ``person`` receives it (what previews show)."""
    recipient = Personalizer(settings, signer, None).recipient(
        email=person.email, name=person.name, subscriber_id=person.subscriber_id)
    return personalize(message, recipient)


def test_copy(session: Session, campaign: Campaign, addresses: Sequence[str],
              settings: Settings) -> tuple[CompiledMessage, list[Person]]:
    """A campaign's "[TEST]" copy and who it goes to (``test_recipients``); hand both to
    ``send_one_off`` once the session is closed. The campaign itself is untouched."""
    people = test_recipients(session, addresses)
    return make_test_copy(compile_for(session, campaign, settings)), people


@dataclass(frozen=True)
class SystemMail:
    """A system email to one subscriber, to send once the transaction that decided it has
    committed (so a slow provider never holds a database transaction open)."""

    template: str
    subject: str
    subscriber_id: int
    email: str
    name: str | None
    context: dict


def send_system_mail(mail: SystemMail, settings: Settings, signer, *,
                     transport: Transport | None = None) -> bool:
    """Render and send one system email; True when the provider accepted it. Never raises:
    a failure is logged (a constituent's page must read the same whatever happened)."""
    try:
        message = system_message(template_for(mail.template, settings), settings,
                                 subject=mail.subject, context=mail.context)
        person = Person(mail.email, mail.name, mail.subscriber_id)
        results = send_one_off(message, [person], settings, signer, transport=transport,
                               kind=mail.template)
    except Exception:  # noqa: BLE001 - logged; the caller decides whether to retry
        log.exception("system email %s to subscriber %s failed", mail.template,
                      mail.subscriber_id)
        return False
    if results and not results[0].accepted:
        log.warning("system email %s to subscriber %s refused: %s", mail.template,
                    mail.subscriber_id, results[0].error)
        return False
    return bool(results)


def template_for(name: str, settings: Settings) -> str:
    """The template a system email uses: "You're already subscribed" uses its own when the
    office has one, else the welcome message (same facts: what they follow, and the
    preferences link in the footer)."""
    if name == "already_subscribed" and not any(
        (settings.effective_templates_dir / f"{name}.{ext}").exists() for ext in ("html", "txt")
    ):
        return "welcome"
    return name
