"""RFC 5322 messages for the local transports (outbox files and SMTP).

``build_mime`` turns one personalized message into a ``multipart/alternative`` EmailMessage
(text first, HTML second, as RFC 2046 orders them from plainest to richest) with From, To,
Reply-To, Date, Message-ID, the campaign's shared headers and the recipient's own headers
(``List-Unsubscribe``, ``List-Unsubscribe-Post``). Display names are encoded properly, so a
name such as ``"O'Brien, Mary"`` or ``"Zoë"`` never breaks the header.
"""

from __future__ import annotations

import email.policy
import email.utils
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any

from mailer.transports.base import CompiledMessage, Recipient

#: Headers we set ourselves; a template or recipient header with these names is ignored.
RESERVED = frozenset({"from", "to", "subject", "date", "message-id", "reply-to",
                      "mime-version", "content-type", "content-transfer-encoding"})


def build_mime(message: CompiledMessage, personalized: Any, recipient: Recipient) -> EmailMessage:
    """Build the message for one recipient.

    ``personalized`` has ``subject``, ``html``, ``text`` and ``headers`` (a
    ``mailer.render.PersonalizedMessage``). Raises ValueError for an address that cannot be
    written into a header.
    """
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = _address(message.from_name, message.from_email)
    msg["To"] = _address(recipient.name, recipient.email)
    if message.reply_to:
        msg["Reply-To"] = message.reply_to
    msg["Subject"] = personalized.subject
    msg["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = email.utils.make_msgid(domain=message.from_email.rpartition("@")[2])
    for headers in (message.headers, getattr(personalized, "headers", None) or {},
                    recipient.headers):
        for name, value in headers.items():
            if name.lower() in RESERVED:
                continue
            if name in msg:
                del msg[name]
            msg[name] = value
    if message.campaign_id is not None:
        msg["X-Mailer-Campaign"] = str(message.campaign_id)
    if recipient.delivery_id is not None:
        msg["X-Mailer-Delivery"] = str(recipient.delivery_id)
    msg.set_content(personalized.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(personalized.html, subtype="html", charset="utf-8",
                        cte="quoted-printable")
    return msg


def _address(name: str | None, addr: str) -> Address:
    return Address(display_name=name or "", addr_spec=addr)
