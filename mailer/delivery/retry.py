"""Sending a sent campaign again to the recipients whose delivery failed.

Only ``failed`` rows are retried: the provider answered that it did not take the message, so
sending again cannot give anyone a second copy. A row that was handed off (accepted,
delivered, deferred, bounced, dropped), skipped or in doubt is never touched. Of the failed
rows, those refused for a reason that a second try cannot change stay failed:

- ``refused (5xx): …``: an SMTP server's permanent refusal (no such mailbox, policy);
- ``refused by the provider: …``: SendGrid refused the address itself;
- ``cannot build: …``: this person's copy could not be built, and would not be again.

A 4xx refusal (mailbox busy, try later) and any other reason is worth another try. So is
only a person who can still be mailed: an active subscriber whose address is not
suppressed (one who unsubscribed, bounced hard or complained since is left alone).

Retried rows go back to ``pending`` and are sent through the same claim path as the first
send (``mailer.delivery.claims``): the claim counts the attempt (``attempts + 1``) and the
row's ``last_error`` says who queued it again after which error, until its new outcome is
written. The caller moves the campaign back to ``sending`` in the same transaction.
"""

from __future__ import annotations

from sqlalchemy import and_, func, not_, select, update
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as CS
from mailer.delivery.records import Delivery
from mailer.delivery.records import DeliveryStatus as DS
from mailer.storage.base import utcnow
from subscribers.models import ACTIVE, Subscriber
from subscribers.segments import not_suppressed

TABLE = Delivery.__table__
C = TABLE.c
#: How the errors a second try cannot change begin (as ``mailer.transports`` and
#: ``mailer.delivery.handoff`` write them).
PERMANENT_PREFIXES = ("refused (5", "refused by the provider", "cannot build")


def is_retryable(error: str | None) -> bool:
    """Whether a failed row with this ``last_error`` is worth another try."""
    return not (error or "").startswith(PERMANENT_PREFIXES)


def _retryable_rows(campaign_id: int):
    """The failed rows of the campaign worth another try whose person can still be mailed."""
    error = func.coalesce(C.last_error, "")
    mailable = (select(Subscriber.id)
                .where(Subscriber.id == C.subscriber_id, Subscriber.status == ACTIVE,
                       not_suppressed()).exists())
    return and_(C.campaign_id == campaign_id, C.status == DS.FAILED, mailable,
                *(not_(error.like(prefix + "%")) for prefix in PERMANENT_PREFIXES))


def count_retryable(session: Session, campaign_id: int) -> int:
    """How many of the campaign's recipients a retry would send to now."""
    return session.scalar(select(func.count()).select_from(TABLE)
                          .where(_retryable_rows(campaign_id))) or 0


def requeue_failed(session: Session, campaign_id: int, *, by: str | None) -> int:
    """Put the campaign's retryable failed rows back to ``pending``; returns how many.

    Only while the campaign is ``sent``, read inside the UPDATE itself: the statement runs
    under the row locks (PostgreSQL) or the single write lock (SQLite), so of two retries
    racing, the second finds the campaign sending (or no failed row left) and requeues
    nothing. The caller commits, together with the campaign's move back to ``sending``.
    """
    still_sent = (select(Campaign.status).where(Campaign.id == campaign_id)
                  .scalar_subquery() == CS.SENT)
    who = by or "someone"
    result = session.execute(
        update(TABLE).where(_retryable_rows(campaign_id), still_sent)
        .values(status=DS.PENDING, batch_id=None, worker=None, lease_until=None,
                last_error=f"queued again by {who} after: " + func.coalesce(C.last_error,
                                                                           "failed"),
                updated_at=utcnow()))
    return result.rowcount or 0
