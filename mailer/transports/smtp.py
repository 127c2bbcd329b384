"""The SMTP transport: smtplib with STARTTLS, implicit TLS or none, and optional login.

One connection serves a whole batch. Each recipient gets its own message (its own unsubscribe
link), so a refused recipient fails alone. If the connection drops mid-batch, the messages
already taken are reported as ``done`` on the raised error, the one being transmitted is
reported as in doubt, and the engine retries only the rest.
"""

from __future__ import annotations

import smtplib
import ssl

from mailer.transports.base import Batch, Recipient, RecipientResult
from mailer.transports.errors import AmbiguousFailure, AuthFailure, TemporaryFailure
from mailer.transports.mime import build_mime
from mailer.transports.substitution import personalize


class SMTPTransport:
    name = "smtp"

    def __init__(self, host: str, port: int, *, username: str | None = None,
                 password: str | None = None, tls: str = "starttls", timeout: float = 30.0):
        if tls not in {"starttls", "tls", "none"}:
            raise ValueError("tls must be starttls, tls or none")
        self.host, self.port, self.tls, self.timeout = host, port, tls, timeout
        self.username, self.password = username, password

    def send(self, batch: Batch) -> list[RecipientResult]:
        """Raises AuthFailure when login is refused, TemporaryFailure when the server cannot be
        reached, AmbiguousFailure (with ``done`` and ``in_doubt``) when it drops mid-batch."""

        results: list[RecipientResult] = []
        with self._connect() as smtp:
            for recipient in batch.recipients:
                try:
                    mime = build_mime(batch.message, personalize(batch.message, recipient),
                                      recipient)
                except (ValueError, TypeError) as exc:
                    results.append(RecipientResult(recipient, False, error=f"cannot build: {exc}"))
                    continue
                results.append(self._send_one(smtp, batch, recipient, mime, results))
        return results

    def _send_one(self, smtp, batch, recipient: Recipient, mime, done) -> RecipientResult:
        try:
            smtp.send_message(mime, from_addr=batch.message.from_email,
                              to_addrs=[recipient.email])
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()), (0, b""))
            return RecipientResult(recipient, False, error=f"refused ({code}): {_text(text)}")
        except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
            if 400 <= exc.smtp_code < 500:
                raise _partial(TemporaryFailure(
                    f"SMTP server deferred the message ({exc.smtp_code}): {_text(exc.smtp_error)}"
                ), done, []) from None
            return RecipientResult(recipient, False,
                                   error=f"refused ({exc.smtp_code}): {_text(exc.smtp_error)}")
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise _partial(AmbiguousFailure(
                f"SMTP connection lost while sending to {recipient.email}: {exc}"),
                done, [recipient]) from None
        return RecipientResult(recipient, True, provider_message_id=mime["Message-ID"])

    def _connect(self) -> smtplib.SMTP:
        try:
            if self.tls == "tls":
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                        context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.tls == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise AuthFailure(f"SMTP login refused ({exc.smtp_code}): {_text(exc.smtp_error)}",
                              status=exc.smtp_code) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise AuthFailure(f"SMTP server does not support what is configured: {exc}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporaryFailure(
                f"cannot connect to SMTP server {self.host}:{self.port}: {exc}") from None
        return smtp

    def close(self) -> None:
        pass


def _partial(error, done: list[RecipientResult], in_doubt: list[Recipient]):
    error.done = list(done)
    error.in_doubt = list(in_doubt)
    return error


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return " ".join(str(value).split())
