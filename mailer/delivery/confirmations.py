"""Confirmation emails for double opt-in after an import: one to each pending subscriber, at
most once, through the mail queue (``mailer.delivery.mailqueue``) like a web signup's.

A subscriber is claimed (``confirm_sent_at`` set) and their confirmation queued in the same
transaction, so a second run or a second process never queues anyone twice. The dashboard's
upload only queues (the queue runner sends within seconds: no request waits on the
provider); the CLI queues and then sends the queue in the foreground, so its report says
how the sending went.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update

from mailer.delivery import mailqueue
from mailer.delivery.oneoff import SystemMail, system_message
from mailer.delivery.outgoing import MailStatus, OutgoingMail, queue_mail
from mailer.settings import Settings
from mailer.storage.base import utcnow
from mailer.storage.db import Database
from subscribers.models import PENDING, Subscriber

SUBJECT = "Please confirm your subscription"
TEMPLATE = "confirm_subscription"
#: How long a confirmation link works (hours); matches the web's confirm page.
EXPIRES_HOURS = 7 * 24


def send_confirmations(db: Database, settings: Settings, signer=None, *,
                       created_since: datetime | None = None, transport=None,
                       batch_size: int = 100, send_now: bool = True) -> dict[str, int]:
    """Queue a confirmation for every pending subscriber not yet sent one (only those
    created at or after ``created_since`` when given). With ``send_now`` the queue is then
    sent here (``mailqueue.drain``, through ``transport``, default the configured one) and
    the result is ``{"sent", "failed"}`` for these emails (a failed one stays queued and is
    retried by the queue runner); without it, ``{"queued"}``.

    ``signer`` is not needed (the runner signs the links with the installation's key); it
    is accepted for the callers that pass it. Raises ConfigError when the transport is
    misconfigured, TemplateError when the ``confirm_subscription`` template is broken
    (before anyone is claimed).
    """
    system_message(TEMPLATE, settings, subject=SUBJECT,
                   context={"confirm_url": settings.public_url,
                            "expires_hours": EXPIRES_HOURS})  # fail early if broken
    queued: list[int] = []
    while batch := _queue_batch(db, created_since, batch_size):
        queued += batch
    if not send_now:
        return {"queued": len(queued)}
    if queued:
        mailqueue.drain(db, settings, transport=transport)
    sent = _count_sent(db, queued)
    return {"sent": sent, "failed": len(queued) - sent}


def _queue_batch(db: Database, since: datetime | None, limit: int) -> list[int]:
    """Claim up to ``limit`` pending subscribers and queue their emails; the queued ids."""
    with db.session() as session:
        query = (select(Subscriber.id, Subscriber.email, Subscriber.name)
                 .where(Subscriber.status == PENDING, Subscriber.confirm_sent_at.is_(None))
                 .order_by(Subscriber.id).limit(limit))
        if since is not None:
            query = query.where(Subscriber.created_at >= since)
        if db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = session.execute(query).all()
        if not rows:
            return []
        session.execute(update(Subscriber).where(Subscriber.id.in_([r[0] for r in rows]))
                        .values(confirm_sent_at=utcnow()))
        mails = [queue_mail(session, SystemMail(TEMPLATE, SUBJECT, subscriber_id, email, name,
                                                {"expires_hours": EXPIRES_HOURS}))
                 for subscriber_id, email, name in rows]
        session.flush()
        return [mail.id for mail in mails]


def _count_sent(db: Database, ids: list[int]) -> int:
    if not ids:
        return 0
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(OutgoingMail).where(
            OutgoingMail.id.in_(ids), OutgoingMail.status == MailStatus.SENT)) or 0


__all__ = ["send_confirmations"]
