"""The send loop of one campaign: requests in flight on a thread pool (from
``MAILER_CONCURRENCY``, adapting to the provider's answer time up to ``MAILER_MAX_IN_FLIGHT``:
see ``pacing.InFlightWindow``), every database write on the calling thread.

    claim (commit: rows are `sending`) ─▶ pool thread: personalize, hand off, retry ─▶
    record (commit: accepted | failed | in_doubt | back to pending)

Before each claim the campaign's status is read again, so pause, cancel and the reputation
guard take effect within one batch. Leases of batches still in flight are extended while they
wait (slow answers, 429 waits), so no other worker mistakes them for abandoned ones.

When the database goes away or its disk fills up (``mailer.storage.outage``) nothing new is
claimed: the batches in flight finish, their outcomes are held (``mailer.delivery.writer``)
and written with backoff until the database is back; a run that must end first journals them.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, OperationalError

from mailer.campaigns.lifecycle import finish_sending, pause_sending
from mailer.campaigns.models import CampaignStatus as CS
from mailer.campaigns.service import get_campaign
from mailer.delivery import claims, recovery
from mailer.delivery.handoff import Handoff, Outcome
from mailer.delivery.pacing import InFlightWindow, RateLimiter
from mailer.delivery.progress import log_handoff, waiting_reason
from mailer.delivery.records import Delivery
from mailer.delivery.records import DeliveryStatus as DS
from mailer.delivery.writer import OutcomeWriter
from mailer.settings import Settings
from mailer.storage import outage
from mailer.storage.db import Database
from mailer.transports.base import CompiledMessage, Recipient, Transport

log = logging.getLogger("mailer.delivery")
C = Delivery.__table__.c
_UNSETTLED = (DS.PENDING, DS.SENDING, DS.IN_DOUBT)


@dataclass
class RunStats:
    """What this run did (not the campaign's totals: see ``engine.status_counts``)."""

    accepted: int = 0
    failed: int = 0
    skipped: int = 0
    in_doubt: int = 0
    requests: int = 0
    started: float = field(default_factory=time.monotonic)
    #: Set while something holds the run up (the database unreachable, its disk full), for
    #: progress lines.
    note: str | None = None

    @property
    def handled(self) -> int:
        return self.accepted + self.failed + self.skipped + self.in_doubt


class CampaignSender:
    """Sends one campaign until nothing is left to claim (or it stops being ``sending``).

    ``wait_for_others``: keep going while rows are in flight elsewhere or in doubt within
    their grace (the foreground ``campaigns send``); a worker passes False and comes back.
    """

    def __init__(self, db: Database, settings: Settings, campaign_id: int, *,
                 transport: Transport, message: CompiledMessage,
                 make_recipient: Callable[..., Recipient], worker: str,
                 stop: threading.Event | None = None,
                 progress: Callable[[RunStats], None] | None = None,
                 wait_for_others: bool = True, poll_interval: float = 1.0):
        self.db, self.settings, self.campaign_id = db, settings, campaign_id
        self.worker, self.progress = worker, progress
        self.stop = stop or threading.Event()
        self.halt = threading.Event()  # set when this run must stop retrying at once
        self.wait_for_others, self.poll_interval = wait_for_others, poll_interval
        self.limiter = RateLimiter(settings.rate_limit)
        self.window = InFlightWindow(settings.concurrency,
                                     max(settings.concurrency, settings.max_in_flight))
        self.handoff = Handoff(settings, transport, message, make_recipient, self.limiter,
                               self.halt, self.window)
        self.stats = RunStats()
        self.inflight: dict[Future, str] = {}
        self.writer = OutcomeWriter(db, settings, worker)
        self.spell: outage.Spell | None = None  # while the database is unreachable
        self.disk_spell: outage.Spell | None = None  # while the transport's disk is full
        self.claim_after = 0.0  # (monotonic) the transport's disk is full: no claim before
        #: Where the next claim starts looking (see ``claims.claim_batch``).
        self.claimed_through = 0
        self.reason: str | None = None

    # -- main loop -------------------------------------------------------------------------
    def run(self) -> RunStats:
        # This thread's database calls release the GIL; with pool threads busy building
        # payloads, the default 5 ms switch interval made each of them wait up to 5 ms to get
        # it back (measured: 100k recipients 14 s -> 5.5 s with 1 ms).
        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, 0.001))
        with ThreadPoolExecutor(self.window.ceiling, thread_name_prefix="send") as pool:
            try:
                self._loop(pool)
            finally:
                sys.setswitchinterval(interval)
                # A stop request (Ctrl-C, SIGTERM) lets the batches in flight finish and be
                # recorded; a pause (halt) has already cut their retries short.
                self._drain()
        return self.stats

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        """Run the steps; a database outage holds them up (nothing is claimed meanwhile)
        until the database is back, or raises when the outage outlasts our patience."""
        while True:
            try:
                return self._steps(pool)
            except DBAPIError as exc:
                if not outage.is_outage(exc):
                    raise
                self._wait_out(exc)

    def _steps(self, pool: ThreadPoolExecutor) -> None:
        last_beat = time.monotonic()
        exhausted = False
        while not self.halt.is_set():
            if self.stop.is_set():
                return
            held_off = self.claim_after - time.monotonic()
            if not exhausted and held_off <= 0 and self.window.has_room():
                exhausted = not self._submit_next(pool)
                if self.halt.is_set():
                    return
                if not exhausted:
                    continue
            if self.inflight:
                self._collect(timeout=min(self.poll_interval, self.settings.lease_seconds / 3))
                if exhausted:
                    self._flush()
            elif held_off > 0 and not exhausted:  # the transport's disk is full: wait
                self._flush()
                self.stop.wait(min(held_off, self.poll_interval))
            else:
                self._flush()
                if self.halt.is_set() or not self._settle():
                    return
                exhausted = False
            if time.monotonic() - last_beat > self.settings.lease_seconds / 3:
                self._heartbeat()
                last_beat = time.monotonic()

    def _submit_next(self, pool: ThreadPoolExecutor) -> bool:
        """Record finished batches and claim the next one in ONE transaction (one commit per
        batch keeps SQLite fast); False when nothing is claimable (or we must stop)."""
        outcomes, (claim, status) = self.writer.commit(self._claim)
        if claim is not None or outcomes:
            self.spell = None  # a write went through: the outage (or full disk) is over
        self._after_recording(outcomes)
        if claim is not None and self.halt.is_set():  # an outcome just paused the campaign
            self._record([Outcome(claim, release_reason="not sent: the campaign was paused")])
            return False
        if claim is None:
            if status != CS.SENDING:
                self.reason = f"campaign is {status}"
                self.halt.set()
            return False
        self.stats.skipped += claim.skipped
        if not claim.rows:
            self._report()
            return True
        if not self.limiter.acquire(len(claim.rows), self.stop):
            self._record([Outcome(claim, release_reason="not sent: the sender stopped")])
            return False
        self.inflight[pool.submit(self.handoff.deliver, claim)] = claim.batch_id
        self.window.started()
        self.stats.requests += 1
        return True

    def _claim(self, session) -> tuple[claims.Claim | None, str | None]:
        claim = claims.claim_batch(session, self.campaign_id, size=self.settings.batch_size,
                                   worker=self.worker, lease_seconds=self.settings.lease_seconds,
                                   after=self.claimed_through)
        if claim is not None:
            self.claimed_through = claim.through
        status = None if claim is not None else claims.campaign_status(session, self.campaign_id)
        return claim, status

    def _collect(self, timeout: float) -> None:
        """Wait for finished batches; they are recorded with the next claim (or now, when no
        claim is coming)."""
        done, _ = wait(list(self.inflight), timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            self.inflight.pop(future)
            self.window.finished()
            out = future.result()
            self._transport_disk(out)
            self.writer.hold(out)

    def _drain(self) -> None:
        """Collect every batch in flight and write what they returned; what cannot be
        written (the database stayed away past the deadline) goes to the journal."""
        while self.inflight:
            self._collect(timeout=self.poll_interval)
        try:
            if self.writer.held and not (self.spell is not None and self.spell.exhausted):
                spell = self.spell or outage.Spell(self.settings, self.stop)
                outage.retrying(spell, what=f"campaign {self.campaign_id}")(self._flush)
        finally:
            self.writer.spill(self.spell.trouble if self.spell is not None
                              else "database unreachable")

    def _flush(self) -> None:
        outcomes, _ = self.writer.commit()
        self._after_recording(outcomes)

    # -- the database away ---------------------------------------------------------------------
    def _wait_out(self, first: DBAPIError) -> None:
        """Claim nothing; keep collecting the batches in flight while retrying (with the
        storage layer's backoff) to write what they returned. Returns once a write went
        through; raises the last error when the spell gives up (``_drain`` journals). The
        spell lasts until a write that changed something commits (on a full disk an empty
        commit proves nothing): a next failure carries on its backoff and clock."""
        continuing = self.spell is not None
        self.spell = self.spell or outage.Spell(self.settings, self.stop)
        self.spell.saw(first)
        if continuing:
            self._back_off(first)
        outage.retrying(self.spell, sleep=self._collect_while_waiting, on_wait=self._note_outage,
                        what=f"campaign {self.campaign_id}")(self._back)
        self.stats.note = None
        self._report()

    def _back_off(self, failure: DBAPIError) -> None:
        """One backoff step before trying again in a spell whose last try "went through"
        without writing anything (an empty commit on a full disk): without it the sender
        would claim, fail, commit nothing and claim again at full speed, saying nothing.
        Raises ``failure`` once the spell is over."""
        spell = self.spell
        assert spell is not None
        if spell.over():
            raise failure
        seconds = spell.next_wait()
        outage.announce_retry(spell, seconds, what=f"campaign {self.campaign_id}",
                              on_wait=self._note_outage)
        self._collect_while_waiting(seconds)

    def _back(self) -> None:
        """The first try after an outage: write what is held and release rows a claim whose
        commit we never heard of left in ``sending`` under our name."""
        keep = set(self.inflight.values())

        def release_orphans(session) -> int:
            return claims.release_orphans(
                session, self.campaign_id, self.worker, keep | self.writer.batches,
                "not sent: its claim's commit was lost with the database connection")
        outcomes, orphans = self.writer.commit(release_orphans)
        if orphans:
            log.warning("campaign %s: %d claimed rows never handed off went back to pending",
                        self.campaign_id, orphans)
        if outcomes or orphans:
            self.spell = None
            log.warning("campaign %s: database writable again", self.campaign_id)
        self._after_recording(outcomes)

    def _collect_while_waiting(self, seconds: float) -> None:
        """The wait between tries: batches in flight keep finishing (their outcomes held)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not self.inflight:
                assert self.spell is not None
                self.spell.sleep(left)
                return
            self._collect(timeout=min(left, self.poll_interval))

    def _transport_disk(self, out: Outcome) -> None:
        """The transport out of space (an outbox on a full disk) holds claims off with the
        outage backoff until a batch goes through; past MAILER_DB_OUTAGE_SECONDS, pauses."""
        now = time.monotonic()
        if out.disk_full is None:
            if self.disk_spell is not None and out.accepted:
                self.disk_spell, self.stats.note = None, None
                log.warning("campaign %s: the transport has disk space again", self.campaign_id)
            return
        if now < self.claim_after:  # a batch of the same try (in flight meanwhile)
            return
        spell = self.disk_spell = self.disk_spell or outage.Spell(self.settings, self.stop)
        spell.last_error, spell.trouble = out.disk_full, "disk full"
        if spell.over():
            out.pause_reason = (f"{out.disk_full} for {outage.seconds_text(spell.limit)} s; "
                                "free space, then resume the campaign")
            return
        seconds = spell.next_wait()
        spell.attempts += 1
        self.claim_after = now + seconds
        log.warning("campaign %s: %s; retrying in %s s", self.campaign_id, out.disk_full,
                    outage.seconds_text(seconds))
        self._note_outage(spell, seconds)

    def _note_outage(self, spell: outage.Spell, seconds: float) -> None:
        held = len(self.writer.held)
        self.stats.note = (f"{spell.trouble}, retrying in {outage.seconds_text(seconds)} s; "
                           f"{held} batch{'es' if held != 1 else ''}' outcomes held")
        self._report()

    # -- bookkeeping (this thread only) ------------------------------------------------------
    def _record(self, outcomes: list[Outcome]) -> None:
        for out in outcomes:
            self.writer.hold(out)
        self._flush()

    def _after_recording(self, outcomes: list[Outcome]) -> None:
        for out in outcomes:
            self.stats.accepted += out.accepted
            self.stats.failed += out.failed
            self.stats.in_doubt += len(out.in_doubt)
            log_handoff(self.campaign_id, self.worker, out)
        if outcomes:
            self._report()
        for out in outcomes:  # whether to pause is the hand-off's decision (one place)
            if out.pause_reason:
                self.pause(out.pause_reason)
                return

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.stats)

    def _heartbeat(self) -> None:
        if self.inflight:
            with self.db.session() as session:
                claims.extend_leases(session, list(self.inflight.values()),
                                     self.settings.lease_seconds)

    def pause(self, reason: str) -> None:
        """Pause the campaign (if it is still sending) and stop this run's retries."""
        self.halt.set()
        self.reason = reason
        log.error("pausing campaign %s: %s", self.campaign_id, reason)

        def write() -> None:
            with self.db.session() as session:
                campaign = get_campaign(session, self.campaign_id, for_update=True)
                pause_sending(session, campaign, by="delivery engine", reason=reason)
        outage.ride_out(write, self.settings, stop=self.stop, what=f"campaign {self.campaign_id}")

    # -- the end of a campaign ---------------------------------------------------------------
    def _settle(self) -> bool:
        """Nothing claimable and nothing in flight: resolve in-doubt rows and finish the
        campaign when every row is settled. True when there may be more to claim now."""
        res = recovery.recover(self.db, self.settings, self.campaign_id)
        if res.requeued:
            return True
        with self.db.session() as session:
            left = dict(session.execute(
                select(C.status, func.count()).where(C.campaign_id == self.campaign_id,
                                                     C.status.in_(_UNSETTLED))
                .group_by(C.status)).all())
        if not left:
            return self._finish()
        if res.held and not left.get(DS.PENDING) and not left.get(DS.SENDING) \
                and not res.waiting:
            self.pause(f"{res.held} deliveries are in doubt and held for review "
                       "(MAILER_IN_DOUBT_POLICY=hold); check the provider's activity, then "
                       f"run `mailer campaigns send {self.campaign_id} --resend-in-doubt` "
                       "or cancel")
            return False
        if not self.wait_for_others:
            return False
        self.reason = waiting_reason(left, res, self.settings)
        self._report()
        return not self.stop.wait(self.poll_interval)

    def _finish(self) -> bool:
        try:
            with self.db.session() as session:
                campaign = get_campaign(session, self.campaign_id, for_update=True)
                unsettled = session.scalar(
                    select(func.count()).select_from(Delivery.__table__)
                    .where(C.campaign_id == self.campaign_id, C.status.in_(_UNSETTLED)))
                if campaign.status == CS.SENDING and not unsettled:
                    finish_sending(session, campaign, by="delivery engine")
                    self.reason = "sent"
                    return False
                return bool(unsettled) and campaign.status == CS.SENDING
        except OperationalError:  # SQLite: another process finished it at the same moment
            return True

