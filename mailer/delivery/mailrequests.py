"""The queue runner's hand-off (``mailer.delivery.mailqueue``): queued system emails grouped
into requests, each request's message rendered once, and the outcome each row is settled with.

Emails alike (same template, subject and stored context: a burst of signups' confirmations)
share a request of up to ``PER_REQUEST``; each person's signed confirmation link, made at
hand-off and never stored, is a per-recipient substitution (``render.CONFIRM_LINK``). A
request the provider refuses because of some recipients is halved until they stand alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import orjson

from mailer.delivery.oneoff import Person, send_one_off, system_message, template_for
from mailer.delivery.outgoing import MailStatus as MS
from mailer.errors import TransportError
from mailer.render import CONFIRM_LINK
from mailer.settings import Settings
from mailer.storage.base import utcnow
from mailer.tokens import TokenSigner
from mailer.transports.base import Transport
from mailer.transports.errors import (
    AmbiguousFailure,
    AuthFailure,
    BadRequest,
    PayloadTooLarge,
    PermanentFailure,
)

log = logging.getLogger("mailer.delivery")
#: The longest wait between two tries of one email.
BACKOFF_MAX = 3600.0
#: Emails handed off in one request at most. A hundred personalizations of a confirmation
#: are a ~100 KB request; a burst of signups then needs few of them.
PER_REQUEST = 100


@dataclass(slots=True)
class Claimed:
    id: int
    subscriber_id: int | None
    template: str
    subject: str
    email: str
    name: str | None
    context: dict
    attempts: int


def send_group(settings: Settings, signer: TokenSigner, transport: Transport,
               mails: list[Claimed]) -> list[tuple[Claimed, dict]]:
    """Hand emails already marked ``sending`` (``mark_sending``) that share one template,
    subject and context (``into_requests``) to the transport as one request; returns each
    with the values its row is to be settled with (``settle``). The message is rendered once:
    each person's signed confirmation link, made now and never stored, is a substitution.
    Never raises for the provider's or the template's failures: they become the outcomes."""
    first = mails[0]
    try:
        message = system_message(template_for(first.template, settings), settings,
                                 subject=first.subject, context=_shared_context(first))
        people = [Person(m.email, m.name, m.subscriber_id, _confirm_url(m, settings, signer))
                  for m in mails]
        results = send_one_off(message, people, settings, signer, transport=transport,
                               kind=first.template)
    except (BadRequest, PayloadTooLarge) as exc:
        return _halve_or_fail(settings, signer, transport, mails, exc)
    except AmbiguousFailure as exc:
        doubt = {"status": MS.IN_DOUBT,
                 "last_error": f"in doubt: the request went out but no answer came back ({exc})"}
        return [(mail, doubt) for mail in mails]
    except Exception as exc:  # noqa: BLE001 - recorded on the rows; the loop must go on
        log.warning("%d queued emails (%s, first %s) not sent: %s", len(mails),
                    first.template, first.id, exc)
        permanent = isinstance(exc, PermanentFailure) and not isinstance(exc, AuthFailure)
        return [(m, _retry_or_fail(settings, m, _reason(exc), permanent)) for m in mails]
    now = utcnow()  # one time for the request's rows, so they settle in one statement
    return [(mail, _outcome(settings, mail, result, now)) for mail, result in zip(
        mails, results, strict=True)]


def _halve_or_fail(settings: Settings, signer: TokenSigner, transport: Transport,
                   mails: list[Claimed], exc: BadRequest | PayloadTooLarge):
    """The provider refused the request and accepted nothing. When it may be some recipients'
    fault, send each half again until they stand alone, so one bad address never fails the
    people sharing its request; a refusal of the message itself fails them all."""
    if len(mails) > 1 and not (isinstance(exc, BadRequest) and not exc.about_recipients):
        middle = len(mails) // 2
        return (send_group(settings, signer, transport, mails[:middle])
                + send_group(settings, signer, transport, mails[middle:]))
    return [(m, _retry_or_fail(settings, m, _reason(exc), True)) for m in mails]


def _outcome(settings: Settings, mail: Claimed, result, now) -> dict:
    if not result.accepted:
        return _retry_or_fail(settings, mail, f"refused by the provider: {result.error}",
                              permanent=True)
    return {"status": MS.SENT, "sent_at": now, "last_error": None,
            "provider_message_id": result.provider_message_id}


def _needs_link(template: str, subscriber_id: int | None) -> bool:
    return template == "confirm_subscription" and subscriber_id is not None


def _shared_context(mail: Claimed) -> dict:
    """The stored context, with the confirmation link as a per-recipient placeholder."""
    context = dict(mail.context or {})
    if _needs_link(mail.template, mail.subscriber_id):
        context["confirm_url"] = CONFIRM_LINK
    return context


def _confirm_url(mail: Claimed, settings: Settings, signer: TokenSigner) -> str | None:
    if not _needs_link(mail.template, mail.subscriber_id):
        return None
    return f"{settings.public_url}/confirm/{signer.make(mail.subscriber_id, 'confirm')}"


def into_requests(mails: list[Claimed]) -> list[list[Claimed]]:
    """``mails`` split into requests: the same template, subject and context (so the same
    rendered message) in the same request, at most ``PER_REQUEST`` each, oldest first."""
    return _split(mails, lambda m: request_key(m.template, m.subject, m.subscriber_id,
                                               m.context))


def first_requests(rows, count: int) -> list[int]:
    """The ids among ``rows`` (id, template, subject, subscriber id, context; oldest first)
    that the first ``count`` requests ``into_requests`` makes of them would hold."""
    chosen = _split(rows, lambda r: request_key(*r[1:]))[:count]
    return sorted(row[0] for request in chosen for row in request)


def request_key(template: str, subject: str, subscriber_id: int | None, context) -> tuple:
    """What emails must share to share one rendered message."""
    return (template, subject, _needs_link(template, subscriber_id),
            orjson.dumps(context or {}, option=orjson.OPT_SORT_KEYS))


def _split(items: list, key) -> list[list]:
    groups: dict[tuple, list] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return [group[i:i + PER_REQUEST] for group in groups.values()
            for i in range(0, len(group), PER_REQUEST)]


def _reason(exc: Exception) -> str:
    kind = "" if isinstance(exc, TransportError) else f"{type(exc).__name__}: "
    return f"{kind}{exc}"[:500]


def backoff(settings: Settings, attempts: int) -> float:
    """Seconds before try ``attempts + 1``: the base doubling each time, at most an hour."""
    return min(BACKOFF_MAX, settings.mail_queue_backoff * 2 ** max(0, attempts - 1))


def _retry_or_fail(settings: Settings, mail: Claimed, reason: str, permanent: bool) -> dict:
    if permanent or mail.attempts >= settings.mail_queue_attempts:
        why = "gave up" if permanent else f"gave up after {mail.attempts} attempts"
        return {"status": MS.FAILED, "last_error": f"{why}: {reason}"}
    wait = backoff(settings, mail.attempts)
    return {"status": MS.QUEUED, "worker": None,
            "next_attempt_at": utcnow() + timedelta(seconds=wait),
            "last_error": f"attempt {mail.attempts} failed, next in {wait:.0f} s: {reason}"}
