"""``run_worker``: one send worker. Run several (on one machine or many, against PostgreSQL)
and they share every campaign that is sending, with no coordinator: each batch is leased with
``FOR UPDATE SKIP LOCKED`` and settled by whichever worker holds it."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select

from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as CS
from mailer.delivery import recovery
from mailer.delivery.engine import send_campaign
from mailer.errors import MailerError
from mailer.settings import Settings
from mailer.storage.db import Database
from mailer.transports import get_transport
from mailer.transports.base import Transport

log = logging.getLogger("mailer.delivery")


def run_worker(db: Database, settings: Settings, stop: threading.Event, *,
               transport: Transport | None = None, poll_interval: float = 1.0,
               max_idle_polls: int | None = None) -> int:
    """Send batches of any campaign in ``sending`` until ``stop`` is set; returns how many
    recipients this worker got accepted. A campaign that cannot be sent (bad template,
    refused key) is paused by the engine and the worker moves on.

    ``max_idle_polls`` (tests, benches) ends the loop after that many polls with nothing to do.
    """
    owns = transport is None
    transport = transport or get_transport(settings)
    worker = recovery.new_worker_name()
    accepted, idle = 0, 0
    try:
        while not stop.is_set():
            did = 0
            for campaign_id in _sending_campaigns(db):
                if stop.is_set():
                    break
                did += _send_some(db, settings, campaign_id, transport, worker, stop,
                                  poll_interval)
            accepted += did
            idle = 0 if did else idle + 1
            if max_idle_polls is not None and idle >= max_idle_polls:
                break
            if not did:
                stop.wait(poll_interval)
    finally:
        recovery.forget_worker(worker)
        if owns:
            transport.close()
    return accepted


def _sending_campaigns(db: Database) -> list[int]:
    with db.session() as session:
        return list(session.scalars(
            select(Campaign.id).where(Campaign.status == CS.SENDING)
            .order_by(Campaign.started_at, Campaign.id)))


def _send_some(db, settings, campaign_id, transport, worker, stop, poll_interval) -> int:
    try:
        summary = send_campaign(db, settings, campaign_id, transport=transport,
                                worker_id=worker, stop=stop, wait_for_others=False,
                                poll_interval=poll_interval)
    except MailerError as exc:
        log.error("campaign %s: %s", campaign_id, exc)
        return 0
    return summary.sent_this_run
