"""Reputation guard: stop mailing before the office's sending domain gets blocked.

Gmail and Yahoo require bulk senders to keep spam complaints under 0.3% of delivered mail
(and recommend under 0.1%). After every ingest that stored a new complaint, each affected
campaign's complaint rate (deliveries with a complaint / deliveries that arrived) is
checked:

- at ``WARN_RATE`` (0.1%) or above: a warning is logged and kept in the campaign's
  ``status_reason`` (unless that already explains something else, such as a pause);
- at ``PAUSE_RATE`` (0.3%) or above: every campaign in ``sending`` is paused through
  ``mailer.campaigns.lifecycle.transition`` with the reason, because all of them share the
  one domain's reputation. A person decides when to resume; the guard checks again at the
  next complaint.

The rate is taken literally, even early in a send: one complaint among the first 300
delivered already pauses. Pausing is cheap to undo; a blocked domain is not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from mailer.campaigns.lifecycle import pause_sending
from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as CS
from mailer.delivery.records import Delivery
from mailer.delivery.records import DeliveryStatus as DS
from mailer.tracking.logs import log_event

WARN_RATE = 0.001
PAUSE_RATE = 0.003
GUARD = "reputation-guard"
WARNING_PREFIX = "complaint rate"
logger = logging.getLogger(__name__)


def complaint_rate(session: Session, campaign_id: int) -> tuple[int, int, float]:
    """``(complaints, delivered, rate)`` for one campaign; rate is 0 when nothing arrived.
    A delivery that bounced after arriving still counts as delivered here."""
    arrived = or_(Delivery.status == DS.DELIVERED, Delivery.delivered_at.is_not(None))
    row = session.execute(
        select(func.count(Delivery.complained_at), func.count().filter(arrived))
        .where(Delivery.campaign_id == campaign_id)
    ).one()
    complaints, delivered = int(row[0] or 0), int(row[1] or 0)
    delivered = max(delivered, complaints)  # a complaint proves the message arrived
    return complaints, delivered, (complaints / delivered if delivered else 0.0)


def check_complaint_rates(
    session: Session, campaign_ids: Iterable[int]
) -> tuple[list[str], list[int]]:
    """Warn or pause for the given campaigns. Returns (warnings, ids of campaigns paused)."""
    warnings: list[str] = []
    paused: list[int] = []
    for campaign_id in sorted(set(campaign_ids)):
        complaints, delivered, rate = complaint_rate(session, campaign_id)
        if rate < WARN_RATE:
            continue
        message = (f"{WARNING_PREFIX} {rate:.2%} for campaign {campaign_id} "
                   f"({complaints} of {delivered} delivered)")
        if rate >= PAUSE_RATE:
            reason = f"paused by {GUARD}: {message} is at or above the {PAUSE_RATE:.1%} limit"
            paused.extend(pause_sending_campaigns(session, reason))
            warnings.append(reason)
        else:
            warnings.append(_warn(session, campaign_id, message))
    return warnings, paused


def _warn(session: Session, campaign_id: int, message: str) -> str:
    text = f"{message} is at or above the {WARN_RATE:.1%} warning level"
    campaign = session.get(Campaign, campaign_id)
    if campaign is not None and (not campaign.status_reason
                                 or campaign.status_reason.startswith(WARNING_PREFIX)):
        campaign.status_reason = text
    logger.warning("campaign %s: %s", campaign_id, text)
    log_event("reputation_warning", campaign=campaign_id, outcome="warn", reason=text)
    return text


def pause_sending_campaigns(session: Session, reason: str) -> list[int]:
    """Pause every campaign now ``sending``; returns their ids. Rows are locked (PostgreSQL)
    so a worker finishing a campaign at the same moment cannot race the pause."""
    stmt = select(Campaign).where(Campaign.status == CS.SENDING).with_for_update()
    paused = []
    for campaign in session.scalars(stmt).all():
        pause_sending(session, campaign, by=GUARD, reason=reason)
        logger.error("campaign %s %s", campaign.id, reason)
        paused.append(campaign.id)
        log_event("campaign_paused", campaign=campaign.id, outcome="paused", reason=reason)
    return paused
