"""Confirmation emails for double opt-in: one to each pending subscriber, at most once.

A subscriber is claimed (``confirm_sent_at`` set and committed) before the email is handed to
the transport, so a crash or a second worker never mails anyone twice; a hand-off that fails
releases the claim so the next run tries again. The email itself goes through
``mailer.delivery.oneoff``, like every other one-off message.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from mailer.delivery.oneoff import SystemMail, send_system_mail, system_message
from mailer.settings import Settings
from mailer.storage.base import utcnow
from mailer.storage.db import Database
from mailer.transports import get_transport
from subscribers.models import PENDING, Subscriber

SUBJECT = "Please confirm your subscription"
TEMPLATE = "confirm_subscription"
#: How long a confirmation link works (hours); matches the web's confirm page.
EXPIRES_HOURS = 7 * 24


def send_confirmations(db: Database, settings: Settings, signer, *,
                       created_since: datetime | None = None, transport=None,
                       batch_size: int = 100) -> dict[str, int]:
    """Email every pending subscriber not yet sent a confirmation (only those created at or
    after ``created_since`` when given). Returns ``{"sent", "failed"}``.

    ``transport`` defaults to the configured one. Raises ConfigError when it is misconfigured,
    TemplateError when the ``confirm_subscription`` template is broken (before anyone is
    claimed).
    """

    system_message(TEMPLATE, settings, subject=SUBJECT,
                   context={"confirm_url": settings.public_url,
                            "expires_hours": EXPIRES_HOURS})  # fail early if broken
    own_transport = transport is None
    transport = transport or get_transport(settings)
    totals = {"sent": 0, "failed": 0}
    try:
        while claimed := _claim(db, created_since, batch_size):
            for subscriber_id, email, name in claimed:
                ok = _send_one(transport, settings, signer, subscriber_id, email, name)
                totals["sent" if ok else "failed"] += 1
                if not ok:
                    _release(db, subscriber_id)
            if totals["failed"] and not totals["sent"]:
                break  # the transport is down: stop rather than churn through everyone
    finally:
        if own_transport:
            transport.close()
    return totals


def _claim(db: Database, since: datetime | None, limit: int) -> list[tuple[int, str, str]]:
    with db.session() as session:
        query = (select(Subscriber.id, Subscriber.email, Subscriber.name)
                 .where(Subscriber.status == PENDING, Subscriber.confirm_sent_at.is_(None))
                 .order_by(Subscriber.id).limit(limit))
        if since is not None:
            query = query.where(Subscriber.created_at >= since)
        if db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = [tuple(r) for r in session.execute(query)]
        if rows:
            session.execute(update(Subscriber).where(Subscriber.id.in_([r[0] for r in rows]))
                            .values(confirm_sent_at=utcnow()))
        return rows


def _release(db: Database, subscriber_id: int) -> None:
    with db.session() as session:
        session.execute(update(Subscriber).where(Subscriber.id == subscriber_id)
                        .values(confirm_sent_at=None))


def _send_one(transport, settings: Settings, signer, subscriber_id: int, email: str,
              name: str | None) -> bool:
    url = f"{settings.public_url}/confirm/{signer.make(subscriber_id, 'confirm')}"
    mail = SystemMail(TEMPLATE, SUBJECT, subscriber_id, email, name,
                      {"confirm_url": url, "expires_hours": EXPIRES_HOURS})
    return send_system_mail(mail, settings, signer, transport=transport)


__all__ = ["send_confirmations"]
