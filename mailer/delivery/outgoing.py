"""The ``outgoing_mail`` table: system emails (signup confirmations, welcomes, "already
subscribed") waiting for the queue runner, and how each one went.

A web request that decides an email is owed writes it here, in the same transaction as the
change that owes it (the new pending subscriber, the confirmation), and answers at once; the
provider is never called inside a request. ``mailer.delivery.mailqueue`` sends the rows.

    queued -> claimed -> sending -> sent
                  |          |-> queued (a temporary failure: again after a backoff)
                  |          |-> failed (a permanent refusal, or the last attempt failed)
                  |          '-> in_doubt (the request went out, no answer came back)
                  '-> queued (its runner stopped before the hand-off: nothing was sent)
    in_doubt -> queued (MAILER_IN_DOUBT_POLICY=resend, after MAILER_IN_DOUBT_GRACE) | held

Links that carry signed tokens (the confirmation link) are not stored: the runner makes them
when it sends, so the table holds no credential.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from mailer.storage.base import Base, JSONType, UTCDateTime, utcnow


class MailStatus:
    """The closed set of a queued email's states (see the module's diagram)."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    IN_DOUBT = "in_doubt"
    ALL = (QUEUED, CLAIMED, SENDING, SENT, FAILED, IN_DOUBT)


#: Context keys the runner makes at send time (signed links): never stored.
LINK_KEYS = frozenset({"confirm_url"})


class OutgoingMail(Base):
    """One system email to one person."""

    __tablename__ = "outgoing_mail"
    __table_args__ = (
        # "The next due queued rows", read by every claim; recovery reads the leased ones.
        Index("ix_outgoing_mail_status_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Erasing the person removes their queued mail with them.
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    template: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(500))
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    context: Mapped[dict] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(20), default=MailStatus.QUEUED)
    #: Hand-offs to the provider so far (a claim that never reached it does not count).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    worker: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Written just before the hand-off: the in-doubt grace counts from here.
    handed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def queue_mail(session: Session, mail) -> OutgoingMail:
    """Queue ``mail`` (a ``mailer.delivery.oneoff.SystemMail``) in the caller's transaction:
    it is sent only if that transaction commits, and never inside it. Returns the new row
    (its ``id`` is set at the next flush)."""
    row = OutgoingMail(**_row(mail))
    session.add(row)
    return row


def queue_mail_now(session: Session, mail) -> None:
    """``queue_mail`` written at once as one bound insert (no ORM object, no flush): for
    the public signup, which queues one email per request and needs nothing back."""
    session.connection().execute(insert(OutgoingMail.__table__), _row(mail))


def _row(mail) -> dict:
    context = {k: v for k, v in mail.context.items() if k not in LINK_KEYS}
    now = utcnow()
    return {"subscriber_id": mail.subscriber_id, "template": mail.template,
            "subject": mail.subject, "email": mail.email, "name": mail.name,
            "context": context, "status": MailStatus.QUEUED, "attempts": 0,
            "next_attempt_at": now, "created_at": now}
