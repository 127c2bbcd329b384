"""``run_worker``: one send worker. Run several (on one machine or many, against PostgreSQL)
and they share every campaign that is sending, with no coordinator: each batch is leased with
``FOR UPDATE SKIP LOCKED`` and settled by whichever worker holds it.

A worker prepares each campaign once (recovery of rows a dead sender left, render, token
key) and keeps it while the campaign keeps its start; every poll after that only claims.

A database that goes away does not end a worker: its sender holds the outcomes of the batches
in flight until they can be written, and the poll loop waits the outage out with the storage
layer's backoff (``mailer.storage.outage``) and carries on once the database answers."""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as CS
from mailer.delivery import recovery
from mailer.delivery.pipeline import Prepared, prepare, send_share
from mailer.delivery.writer import apply_journals
from mailer.errors import MailerError
from mailer.settings import Settings
from mailer.storage import outage
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
    prepared: dict[int, Prepared] = {}
    accepted, idle = 0, 0
    try:
        outage.ride_out(lambda: apply_journals(db, settings), settings, stop=stop,
                        what="worker")
        while not stop.is_set():
            try:
                did = _poll(db, settings, prepared, stop, transport=transport, worker=worker,
                            poll_interval=poll_interval)
            except DBAPIError as exc:
                if not outage.is_outage(exc):
                    raise
                _wait_for_database(db, settings, stop, exc)
                continue
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


def _poll(db: Database, settings: Settings, prepared: dict[int, Prepared],
          stop: threading.Event, **share) -> int:
    """One look at every campaign that is sending; returns the recipients accepted."""
    did = 0
    for campaign_id, started_at in _sending_campaigns(db):
        if stop.is_set():
            break
        ready = _prepared(db, settings, prepared, campaign_id, started_at)
        if ready is not None:
            did += send_share(db, settings, ready, stop=stop, **share).accepted
    return did


def _wait_for_database(db: Database, settings: Settings, stop: threading.Event,
                       first: DBAPIError) -> None:
    """Wait (with the outage policy's backoff) until the database answers again, then record
    what a sender of ours had to journal meanwhile (its spell ran out): those rows are still
    ``sending`` under our live name and must not wait for a lease to expire, let alone be
    released. A stop request ends the wait (nothing is held here); raises when the outage
    outlasts it."""
    log.warning("worker: %s (%s); waiting for it", outage.trouble(first), outage.reason(first))
    spell = outage.Spell(settings, stop)

    def back() -> None:
        outage.ping(db.engine)
        apply_journals(db, settings)
    try:
        outage.ride_out(back, settings, spell=spell, what="worker")
    except DBAPIError:
        if stop.is_set():
            return
        raise
    log.warning("worker: database reachable again")


def _sending_campaigns(db: Database) -> list[tuple[int, datetime | None]]:
    with db.session() as session:
        return [tuple(row) for row in session.execute(
            select(Campaign.id, Campaign.started_at).where(Campaign.status == CS.SENDING)
            .order_by(Campaign.started_at, Campaign.id))]


def _prepared(db: Database, settings: Settings, cache: dict[int, Prepared], campaign_id: int,
              started_at: datetime | None) -> Prepared | None:
    """The campaign's ``Prepared``, made on first sight (after settling what a dead sender
    left); None when it cannot be sent (``prepare`` paused it; logged)."""
    ready = cache.get(campaign_id)
    if ready is not None and ready.started_at == started_at:
        return ready
    try:
        recovery.recover(db, settings, campaign_id)
        ready = cache[campaign_id] = prepare(db, settings, campaign_id)
    except MailerError as exc:
        log.error("campaign %s: %s", campaign_id, exc)
        return None
    return ready
