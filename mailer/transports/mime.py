"""RFC 5322 messages for the local transports (outbox files and SMTP).

``build_mime`` turns one personalized message into a ``multipart/alternative`` EmailMessage
(text first, HTML second, as RFC 2046 orders them from plainest to richest) with From, To,
Reply-To, Date, Message-ID, the campaign's shared headers and the recipient's own headers
(``List-Unsubscribe``, ``List-Unsubscribe-Post``). Display names are encoded properly, so a
name such as ``"O'Brien, Mary"`` or ``"Zoë"`` never breaks the header, and no name, however
long or full of commas, quotes and addresses, makes ``To`` name anyone but the recipient.
"""

from __future__ import annotations

import email.policy
import email.utils
from email.header import Header
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
    _set_to(msg, recipient.name, recipient.email)
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


def _set_to(msg: EmailMessage, name: str | None, addr: str) -> None:
    """``To: name <addr>``, naming exactly one mailbox whatever ``name`` holds.

    A header that fits on one line is left to the email package. A longer one it would fold,
    and its folder mangles long display names (Python 3.11 drops the quotes of a quoted name
    it splits, so ``"Smith, John <evil@example.com>, …"`` turns into several addresses). Such
    a name is written as RFC 2047 encoded words instead, folded by ``email.header.Header``,
    in which commas, quotes and angle brackets are only encoded text; the folded value is
    stored as it is (``set_raw``), since every line already fits and must not be refolded.
    """
    address = _address(name, addr)  # raises ValueError for an address no header can hold
    maxlen = msg.policy.max_line_length
    if not name or (name.isascii() and len(f"To: {address}") <= maxlen):
        msg["To"] = address
        return
    mailbox = f"<{address.addr_spec}>"
    if len(mailbox) + 1 > maxlen:  # no room for a name next to this address on any line
        msg["To"] = Address(addr_spec=addr)
        return
    words = Header(name, "utf-8", header_name="To").encode(linesep="\n")
    last_line = words.rpartition("\n")[2] if "\n" in words else f"To: {words}"
    joint = " " if len(last_line) + 1 + len(mailbox) <= maxlen else "\n "
    msg.set_raw("To", words + joint + mailbox)
