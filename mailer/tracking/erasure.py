"""Erasure ("forget me"): the one action that removes a person from everything we hold.

It spans three owners — the subscriber and their audit trail (``subscribers``), the delivery
records (``mailer.delivery.records``) and the provider events (``mailer.tracking``) — so it
lives here, above all three, rather than inside any one of them.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from mailer.delivery.records import Delivery, DeliveryStatus
from mailer.tracking.suppression import erase_events_for
from subscribers.models import UNSUBSCRIBED, StatusChange, Subscriber
from subscribers.service import FORGOTTEN, suppress_hash


def forget(session: Session, subscriber: Subscriber, *, cause: str = "erasure request") -> None:
    """Erase the person: delete the subscriber (topics go with it), scrub the address from past
    delivery records, and keep only the address's hash on the suppression list so no later
    import can add them back. The audit trail keeps an anonymous "forgotten" entry."""

    digest = subscriber.email_hash
    suppress_hash(session, digest, FORGOTTEN)
    placeholder = f"forgotten-{digest[:16]}@invalid"
    session.execute(
        update(Delivery).where(Delivery.subscriber_id == subscriber.id,
                               Delivery.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.SKIPPED)
    )

    erase_events_for(session, subscriber_id=subscriber.id, email=subscriber.email)
    # No foreign key clears subscriber_id (see Delivery): after the events, which find the
    # person's rows by it, this is the last use of it.
    session.execute(update(Delivery).where(Delivery.subscriber_id == subscriber.id)
                    .values(email=placeholder, subscriber_id=None))
    session.add(StatusChange(subscriber_id=None, old_status=subscriber.status,
                             new_status=UNSUBSCRIBED, cause=f"forgotten: {cause}"))
    session.execute(update(StatusChange).where(StatusChange.subscriber_id == subscriber.id)
                    .values(subscriber_id=None))
    session.delete(subscriber)
    session.flush()
