"""Every campaign state change goes through ``transition``: the one place the allowed moves
are written down, logged and checked.

    draft ──approve──▶ approved ──schedule──▶ scheduled ──start──▶ sending ──▶ sent
      ▲                   │   └──────────send now──────────────────▲  │  ▲
      └───── edit ────────┘                                        │  ▼  │
                                                    paused ◀──pause─┘  resume
    any unfinished state ──cancel──▶ cancelled;  sending ──▶ failed;  scheduled ──▶ missed
    sent ──retry──▶ sending (only its failed recipients go back to pending: ``retry_sending``)

A scheduled campaign may be rescheduled (scheduled ──▶ scheduled, logged like any move); a
missed one may be scheduled again or sent now. Editing an approved, scheduled or missed
campaign returns it to draft, which clears its approval and any blackout override: both were
given for the content as it was.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign, CampaignLog
from mailer.campaigns.models import CampaignStatus as S
from mailer.errors import InvalidTransition
from mailer.storage.base import utcnow

ALLOWED: dict[str, frozenset[str]] = {
    S.DRAFT: frozenset({S.APPROVED, S.CANCELLED}),
    S.APPROVED: frozenset({S.DRAFT, S.SCHEDULED, S.SENDING, S.CANCELLED}),
    S.SCHEDULED: frozenset({S.DRAFT, S.APPROVED, S.SCHEDULED, S.SENDING, S.CANCELLED,
                            S.MISSED}),
    S.SENDING: frozenset({S.PAUSED, S.SENT, S.FAILED, S.CANCELLED}),
    S.PAUSED: frozenset({S.SENDING, S.CANCELLED}),
    S.MISSED: frozenset({S.DRAFT, S.APPROVED, S.SCHEDULED, S.SENDING, S.CANCELLED}),
    S.FAILED: frozenset({S.SENDING, S.CANCELLED}),
    S.SENT: frozenset({S.SENDING}),  # a retry of its failed recipients, nothing else
    S.CANCELLED: frozenset(),
}
FINISHED = frozenset({S.SENT, S.CANCELLED})
#: States whose content may still be edited (an edit returns the campaign to draft).
EDITABLE = frozenset({S.DRAFT, S.APPROVED, S.SCHEDULED, S.MISSED})


def can_move(current: str, target: str) -> bool:
    return target in ALLOWED.get(current, frozenset())


def transition(
    session: Session, campaign: Campaign, target: str, *, by: str | None = None,
    reason: str | None = None,
) -> None:
    """Move ``campaign`` to ``target`` and log it in the same transaction.

    Raises InvalidTransition (naming both states) when the move is not allowed.
    """
    if target not in S.ALL:
        raise InvalidTransition(f"unknown campaign state {target!r}")
    if not can_move(campaign.status, target):
        raise InvalidTransition(
            f"campaign {campaign.id} is {campaign.status}; it cannot become {target}"
        )
    session.add(CampaignLog(campaign_id=campaign.id, from_status=campaign.status,
                            to_status=target, by=by, reason=reason))
    campaign.status = target
    campaign.status_reason = reason
    now = utcnow()
    if target == S.SENDING and campaign.started_at is None:
        campaign.started_at = now
    if target in (S.SENT, S.CANCELLED, S.FAILED):
        campaign.finished_at = now
    if target == S.DRAFT:
        campaign.approved_by = campaign.approved_at = None
        campaign.blackout_override_by = campaign.blackout_override_reason = None
    if target in (S.DRAFT, S.APPROVED):
        campaign.scheduled_at = None  # back before scheduling: no send time any more


# The moves the system makes (engine, scheduler, importer, reputation guard, digests), named so
# that no module outside this package picks target states itself. Staff actions are in
# ``mailer.campaigns.actions``.

def start_sending(session: Session, campaign: Campaign, *, by: str, reason: str) -> None:
    """approved | scheduled | missed -> sending (the audience has just been drawn)."""
    transition(session, campaign, S.SENDING, by=by, reason=reason)


def pause_sending(session: Session, campaign: Campaign, *, by: str, reason: str) -> bool:
    """sending -> paused with the reason; False (nothing changed) when it is not sending."""
    if campaign.status != S.SENDING:
        return False
    transition(session, campaign, S.PAUSED, by=by, reason=reason)
    return True


def finish_sending(session: Session, campaign: Campaign, *, by: str) -> None:
    """sending -> sent: every recipient is settled."""
    transition(session, campaign, S.SENT, by=by, reason="every recipient settled")


def retry_sending(session: Session, campaign: Campaign, *, by: str | None,
                  reason: str) -> None:
    """sent -> sending: some failed recipients were put back to pending for another try
    (``mailer.delivery.retry``); the send finishes again once they are settled."""
    transition(session, campaign, S.SENDING, by=by, reason=reason)


def mark_missed(session: Session, campaign: Campaign, *, by: str, reason: str) -> None:
    """scheduled -> missed: it could not start at its time (the reason says why)."""
    transition(session, campaign, S.MISSED, by=by, reason=reason)


def approve_missed(session: Session, campaign: Campaign, *, by: str | None) -> None:
    """missed -> approved: a campaign that missed its time is being sent now instead."""
    transition(session, campaign, S.APPROVED, by=by, reason="sending now")


def back_to_draft(session: Session, campaign: Campaign, *, by: str, reason: str) -> None:
    """approved | scheduled | missed -> draft: what was approved has changed."""
    transition(session, campaign, S.DRAFT, by=by, reason=reason)


def approve_and_schedule(session: Session, campaign: Campaign, *, by: str, at,
                         approval: str, reason: str) -> None:
    """draft -> approved -> scheduled at ``at`` in one go (a digest approves its own run:
    its content is releases the office already published)."""
    transition(session, campaign, S.APPROVED, by=by, reason=approval)
    campaign.approved_by, campaign.approved_at = by, utcnow()
    campaign.scheduled_at = at
    transition(session, campaign, S.SCHEDULED, by=by, reason=reason)


def note(session: Session, campaign: Campaign, *, by: str | None, reason: str) -> None:
    """Log an event that changes no state (an edit of a draft, a recorded override)."""
    session.add(CampaignLog(campaign_id=campaign.id, from_status=campaign.status,
                            to_status=campaign.status, by=by, reason=reason))
