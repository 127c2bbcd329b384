"""The batch pipeline every send mode shares: claim → personalize → hand off → record.

``prepare`` does once, per campaign and process, what every batch of a send shares: render
the campaign (pausing one that cannot render, so no worker retries it forever) and build the
recipient factory with the installation's token key. ``run_batches`` then drives a
``CampaignSender`` over the campaign's claimable rows. The three modes differ only around it:

    engine.send_campaign   foreground: start, recover, fan out, wait for every row to settle
    send_share             a worker's or fan-out helper's turn: what is claimable now, no wait
    worker.run_worker      polls the sending campaigns, keeping one ``Prepared`` per campaign
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from mailer.campaigns.content import compile_for
from mailer.campaigns.lifecycle import pause_sending
from mailer.campaigns.models import Campaign
from mailer.campaigns.service import get_campaign
from mailer.delivery.sender import CampaignSender, RunStats
from mailer.errors import MailerError
from mailer.render import Personalizer
from mailer.settings import Settings
from mailer.storage.db import Database, secret_key
from mailer.tokens import TokenSigner
from mailer.transports.base import CompiledMessage, Recipient, Transport


@dataclass(frozen=True)
class Prepared:
    """What every batch of one campaign's send shares (valid while it keeps its start)."""

    campaign_id: int
    started_at: datetime | None
    message: CompiledMessage
    make_recipient: Callable[..., Recipient]


def prepare(db: Database, settings: Settings, campaign_id: int) -> Prepared:
    """Render the campaign and build its recipient factory. A campaign that cannot render is
    paused with the reason; raises that render error (NotFound, TemplateError, …)."""
    try:
        with db.session() as session:
            campaign = get_campaign(session, campaign_id)
            started_at = campaign.started_at
            message = compiled_message(session, campaign, settings)
    except MailerError as exc:
        with db.session() as session:
            campaign = get_campaign(session, campaign_id, for_update=True)
            pause_sending(session, campaign, by="delivery engine",
                          reason=f"cannot render: {exc}")
        raise
    return Prepared(campaign_id, started_at, message,
                    make_recipient_factory(db, settings, campaign_id))


def run_batches(db: Database, settings: Settings, prepared: Prepared, *,
                transport: Transport, worker: str, stop: threading.Event,
                progress: Callable[[RunStats], None] | None = None,
                wait_for_others: bool, poll_interval: float) -> CampaignSender:
    """Send the campaign's claimable rows until none is left (or, with ``wait_for_others``,
    until every row is settled), it stops being ``sending``, or ``stop`` is set. Returns the
    sender, whose ``stats``, ``reason`` and ``halt`` tell how the run ended."""
    sender = CampaignSender(
        db, settings, prepared.campaign_id, transport=transport, message=prepared.message,
        make_recipient=prepared.make_recipient, worker=worker, stop=stop, progress=progress,
        wait_for_others=wait_for_others, poll_interval=poll_interval)
    sender.run()
    return sender


def send_share(db: Database, settings: Settings, prepared: Prepared, *,
               transport: Transport, worker: str, stop: threading.Event,
               progress: Callable[[RunStats], None] | None = None,
               poll_interval: float = 1.0) -> RunStats:
    """One worker's turn on a campaign that is already sending: send what is claimable now
    and return. Never starts a campaign, spreads over processes or waits for other senders'
    rows (rows a dead sender left are settled by ``recovery`` when they come due)."""
    sender = run_batches(db, settings, prepared, transport=transport, worker=worker,
                         stop=stop, progress=progress, wait_for_others=False,
                         poll_interval=poll_interval)
    return sender.stats


# -- rendering and signing, cached per process --------------------------------------------------
_compiled: dict[tuple[int, Any], CompiledMessage] = {}
_signers: dict[str, Any] = {}
_cache_lock = threading.Lock()


def compiled_message(session: Session, campaign: Campaign, settings: Settings) -> CompiledMessage:
    """The campaign rendered once per process (a campaign cannot change while it sends)."""
    key = (campaign.id, campaign.started_at)
    with _cache_lock:
        cached = _compiled.get(key)
    if cached is None:
        cached = compile_for(session, campaign, settings)
        with _cache_lock:
            _compiled[key] = cached
    return cached


def make_recipient_factory(db: Database, settings: Settings, campaign_id: int):
    """``Personalizer(...).recipient`` for the campaign, with the installation's token key."""
    secret = secret_key(db, settings)
    with _cache_lock:
        signer = _signers.get(secret)
        if signer is None:
            signer = _signers[secret] = TokenSigner(secret)
    return Personalizer(settings, signer, campaign_id).recipient
