"""Transports hand a rendered batch to a mail system: ``outbox`` (files), ``smtp``, ``sendgrid``.

They translate and hand off, nothing more: retries, pacing and bookkeeping belong to
``mailer.delivery``. ``get_transport(settings)`` builds the configured one.
"""

from __future__ import annotations

from mailer.errors import ConfigError
from mailer.settings import Settings
from mailer.transports.base import Batch, CompiledMessage, Recipient, RecipientResult, Transport
from mailer.transports.outbox import OutboxTransport
from mailer.transports.sendgrid import SendGridTransport
from mailer.transports.smtp import SMTPTransport

__all__ = ["Batch", "CompiledMessage", "Recipient", "RecipientResult", "Transport",
           "get_transport"]


def get_transport(settings: Settings) -> Transport:
    """The transport named by ``MAILER_TRANSPORT``.

    Raises ConfigError when its required settings (API key, SMTP host) are missing.
    """
    if settings.transport == "sendgrid":
        if settings.sendgrid_api_key is None or not settings.sendgrid_api_key.get_secret_value():
            raise ConfigError("MAILER_TRANSPORT=sendgrid needs MAILER_SENDGRID_API_KEY")
        return SendGridTransport(settings.sendgrid_api_key.get_secret_value(),
                                 settings.sendgrid_host, settings.sendgrid_timeout)
    if settings.transport == "smtp":
        if not settings.smtp_host:
            raise ConfigError("MAILER_TRANSPORT=smtp needs MAILER_SMTP_HOST")
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return SMTPTransport(settings.smtp_host, settings.smtp_port,
                             username=settings.smtp_username, password=password,
                             tls=settings.smtp_tls, timeout=settings.smtp_timeout)

    return OutboxTransport(settings.outbox_dir)
