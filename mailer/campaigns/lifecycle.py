"""Every campaign state change goes through ``transition``: the one place the allowed moves
are written down, logged and checked.

    draft ──approve──▶ approved ──schedule──▶ scheduled ──start──▶ sending ──▶ sent
      ▲                   │   └──────────send now──────────────────▲  │  ▲
      └───── edit ────────┘                                        │  ▼  │
                                                    paused ◀──pause─┘  resume
    any unfinished state ──cancel──▶ cancelled;  sending ──▶ failed;  scheduled ──▶ missed

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
    S.SENT: frozenset(),
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


def note(session: Session, campaign: Campaign, *, by: str | None, reason: str) -> None:
    """Log an event that changes no state (an edit of a draft, a recorded override)."""
    session.add(CampaignLog(campaign_id=campaign.id, from_status=campaign.status,
                            to_status=campaign.status, by=by, reason=reason))
