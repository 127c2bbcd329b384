"""The queue runner: sends the system emails that web requests queued in ``outgoing_mail``
(``mailer.delivery.outgoing``), each exactly once, within seconds.

Every row is written before and after its hand-off, like a campaign's deliveries:

1. ``claim``: the due ``queued`` rows are read (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
   runners in other processes take other rows) and moved to ``claimed`` under this runner's
   name with a lease; the update re-checks ``queued``, so on SQLite one runner gets each.
2. Just before the hand-off the claimed rows become ``sending`` (``handed_at``, one more
   attempt), in one statement: they are handed off together. Emails alike (template,
   subject and context: a burst of signups' confirmations) go in one request, rendered
   once, each person's confirmation link a substitution; a round is as many requests in
   parallel as the runner has in flight.
3. After the batch's hand-offs, in one transaction: ``sent`` with the provider's message
   id; ``queued`` again after an exponential backoff on a temporary failure; ``failed``
   with the reason on a permanent refusal or when ``MAILER_MAIL_QUEUE_ATTEMPTS`` are
   spent; ``in_doubt`` when the request went out and no answer came back.

``recover`` settles what a runner that died left: a ``claimed`` row never reached the
provider and is queued again at once; a ``sending`` row may have, so it becomes ``in_doubt``
and follows the project's in-doubt policy (``mailer.delivery.recovery``): after
``MAILER_IN_DOUBT_GRACE`` it is re-sent (``resend``) or held for a person (``hold``). A lease
ends when it expires, or at once when its runner is a process on this machine that is gone.

``run_mail_queue`` is the loop ``mailer worker``, ``mailer run`` and (unless
``MAILER_WEB_SENDS_MAIL=false``) ``mailer serve`` run; ``drain`` sends what is due and returns.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update

from mailer.delivery import mailrequests, recovery
from mailer.delivery.mailrequests import Claimed, first_requests, into_requests, send_group
from mailer.delivery.outgoing import MailStatus as MS
from mailer.delivery.outgoing import OutgoingMail
from mailer.errors import MailerError
from mailer.settings import Settings
from mailer.storage.base import utcnow
from mailer.storage.db import Database, secret_key
from mailer.tokens import TokenSigner
from mailer.transports import get_transport
from mailer.transports.base import Transport

log = logging.getLogger("mailer.delivery")
TABLE = OutgoingMail.__table__
C = TABLE.c
#: How long a woken runner lets more mail gather before it claims (seconds).
GATHER = 0.05
#: Due emails one round looks at to fill its requests (it claims only theirs).
ROUND_MAX = 1000
#: Days a sent or given-up email stays in the table.
KEEP_DAYS = 30
#: How often a running queue looks for rows a dead runner left (seconds).
RECOVER_EVERY = 15.0


@dataclass(slots=True)
class Recovered:
    requeued: int = 0
    in_doubt: int = 0
    resent: int = 0
    held: int = 0
    purged: int = 0


def claim(db: Database, worker: str, limit: int, lease_seconds: float,
          now: datetime | None = None, *, requests: int | None = None) -> list[Claimed]:
    """Take up to ``limit`` due queued rows for ``worker`` (oldest first); no other runner
    gets them until the lease ends or ``recover`` hands them back. With ``requests``, only
    the rows of the first that many requests among them (``mailrequests.first_requests``):
    a round claims no more than it hands off at once, so no row waits in ``sending``
    behind other requests.

    The due rows are read first (locked and skipped by other runners on PostgreSQL), so a
    look that finds nothing writes nothing (on SQLite a write would wait for, and hold up,
    every signup's own write); the update re-checks ``queued``, so a row two runners both
    saw is claimed by one."""
    now = now or utcnow()
    due = (select(C.id, C.template, C.subject, C.subscriber_id, C.context)
           .where(C.status == MS.QUEUED, C.next_attempt_at <= now).order_by(C.id).limit(limit))
    if db.dialect == "postgresql":
        due = due.with_for_update(skip_locked=True)
    with db.session() as session:
        candidates = session.execute(due).all()
        ids = ([row[0] for row in candidates] if requests is None
               else first_requests(candidates, requests))
        if not ids:
            return []
        rows = [Claimed(*row) for row in session.execute(
            update(TABLE).where(C.id.in_(ids), C.status == MS.QUEUED)
            .values(status=MS.CLAIMED, worker=worker,
                    lease_until=now + timedelta(seconds=lease_seconds))
            .returning(C.id, C.subscriber_id, C.template, C.subject, C.email, C.name,
                       C.context, C.attempts))]
    return sorted(rows, key=lambda r: r.id)


def mark_sending(db: Database, mails: list[Claimed], worker: str) -> list[Claimed]:
    """The write before the hand-off, for every mail about to be handed off at once; returns
    those still ours (a claim whose lease was taken over is not sent)."""
    if not mails:
        return []
    with db.session() as session:
        ours = set(session.scalars(
            update(TABLE).where(C.id.in_([m.id for m in mails]), C.status == MS.CLAIMED,
                                C.worker == worker)
            .values(status=MS.SENDING, handed_at=utcnow(), attempts=C.attempts + 1)
            .returning(C.id)).all())
    for mail in mails:
        mail.attempts += 1
    return [m for m in mails if m.id in ours]


def settle(db: Database, owner: str, outcomes: list[tuple[Claimed, dict]]) -> None:
    """The write after the hand-offs: each row's outcome, in one transaction for the batch
    (fewer SQLite write locks beside the signups' own), and only while the row is still
    ``owner``'s and ``sending``."""
    if not outcomes:
        return
    alike: dict[tuple, list[int]] = {}  # one UPDATE per distinct outcome (a request's rows)
    for mail, values in outcomes:
        alike.setdefault(tuple(sorted(values.items())), []).append(mail.id)
    with db.session() as session:
        for values, ids in alike.items():
            session.execute(update(TABLE).where(C.id.in_(ids), C.status == MS.SENDING,
                                                C.worker == owner)
                            .values(lease_until=None, **dict(values)))


def recover(db: Database, settings: Settings, now: datetime | None = None) -> Recovered:
    """Settle the rows of runners that stopped (see the module's docstring)."""
    now = now or utcnow()
    out = Recovered()
    with db.session() as session:
        workers = session.scalars(select(C.worker).where(
            C.status.in_((MS.CLAIMED, MS.SENDING))).distinct()).all()
        gone = [w for w in workers if recovery.worker_is_gone(w)]
        abandoned = or_(C.lease_until < now, C.worker.in_(gone)) if gone else C.lease_until < now
        out.requeued = session.execute(
            update(TABLE).where(C.status == MS.CLAIMED, abandoned)
            .values(status=MS.QUEUED, worker=None, lease_until=None,
                    last_error="its runner stopped before handing it over; queued again")
        ).rowcount or 0
        out.in_doubt = session.execute(
            update(TABLE).where(C.status == MS.SENDING, abandoned)
            .values(status=MS.IN_DOUBT, lease_until=None,
                    last_error="in doubt: its runner stopped during the hand-off")
        ).rowcount or 0
        overdue = and_(C.status == MS.IN_DOUBT,
                       or_(C.handed_at.is_(None),
                           C.handed_at <= now - timedelta(seconds=settings.in_doubt_grace)))
        if settings.in_doubt_policy == "resend":
            out.resent = session.execute(
                update(TABLE).where(overdue)
                .values(status=MS.QUEUED, worker=None, next_attempt_at=now,
                        last_error=f"re-sent: no answer from the provider within "
                                   f"{settings.in_doubt_grace} s (MAILER_IN_DOUBT_POLICY=resend)")
            ).rowcount or 0
        else:
            out.held = len(session.scalars(select(C.id).where(overdue)).all())
        out.purged = _purge(session, now)
    return out


def _purge(session, now: datetime) -> int:
    """Sent and given-up emails older than ``KEEP_DAYS`` go: the queue is not an archive of
    people's addresses (the event log keeps each hand-off's record)."""
    cutoff = now - timedelta(days=KEEP_DAYS)
    old = or_(and_(C.status == MS.SENT, C.sent_at < cutoff),
              and_(C.status == MS.FAILED, C.created_at < cutoff))
    if session.scalar(select(C.id).where(old).limit(1)) is None:
        return 0  # nothing to delete: no write (see ``claim``)
    return session.execute(TABLE.delete().where(old)).rowcount or 0


def make_signer(db: Database, settings: Settings) -> TokenSigner:
    return TokenSigner(secret_key(db, settings))


def round_size(settings: Settings) -> int:
    """How many requests a runner has in flight at once: MAILER_MAX_IN_FLIGHT (the most a
    campaign's window grows to). A round waits for its slowest answer."""
    return settings.max_in_flight


def send_due(db: Database, settings: Settings, signer: TokenSigner, transport: Transport,
             worker: str, pool: ThreadPoolExecutor | None = None,
             in_flight: int | None = None) -> int:
    """Claim what is due for ``in_flight`` requests (default ``round_size``) of up to
    ``PER_REQUEST`` alike emails each (looking at ``ROUND_MAX`` due rows at most), mark it
    ``sending``, hand it off (the requests in parallel on ``pool`` when given) and settle the
    outcomes; returns how many rows were claimed."""
    in_flight = in_flight or round_size(settings)
    # Read at each claim, not imported: the bench sets it to 1 for its baseline.
    per_request = mailrequests.PER_REQUEST
    claimed = claim(db, worker, min(ROUND_MAX, in_flight * per_request),
                    settings.lease_seconds, requests=in_flight)
    requests = into_requests(mark_sending(db, claimed, worker))

    def one(mails: list[Claimed]) -> list[tuple[Claimed, dict]]:
        return send_group(settings, signer, transport, mails)
    answered = map(one, requests) if pool is None else pool.map(one, requests)
    settle(db, worker, [outcome for request in answered for outcome in request])
    return len(claimed)


def drain(db: Database, settings: Settings, *, transport: Transport | None = None) -> int:
    """Recover, then send everything due now, in rounds of ``round_size`` requests in
    parallel (an import's double opt-in queues thousands); returns how many were tried."""
    owns = transport is None
    transport = transport or get_transport(settings)
    worker = recovery.new_worker_name()
    tried = 0
    try:
        recover(db, settings)
        signer = make_signer(db, settings)
        with ThreadPoolExecutor(round_size(settings), thread_name_prefix="mailqueue") as pool:
            while did := send_due(db, settings, signer, transport, worker, pool):
                tried += did
    finally:
        recovery.forget_worker(worker)
        if owns:
            transport.close()
    return tried


def run_mail_queue(db: Database, settings: Settings, stop: threading.Event, *,
                   transport: Transport | None = None, wake: threading.Event | None = None,
                   poll_interval: float = 1.0, max_idle_polls: int | None = None,
                   in_flight: int | None = None) -> int:
    """Send queued mail until ``stop`` is set; returns how many rows were tried. ``wake``
    (set by the web app after it queues something) cuts the wait between polls short;
    ``max_idle_polls`` (tests) ends the loop after that many polls with nothing due;
    ``in_flight``: emails per round (default ``round_size``)."""
    in_flight = in_flight or round_size(settings)
    owns = transport is None
    transport = transport or get_transport(settings)
    worker = recovery.new_worker_name()
    signer = make_signer(db, settings)
    tried, idle, recovered_at = 0, 0, float("-inf")
    clock = threading.Event()  # stands in for ``wake`` when none is given
    try:
        with ThreadPoolExecutor(in_flight, thread_name_prefix="mailqueue") as pool:
            while not stop.is_set():
                if time.monotonic() - recovered_at >= RECOVER_EVERY:
                    recover(db, settings)
                    recovered_at = time.monotonic()
                did = send_due(db, settings, signer, transport, worker, pool, in_flight)
                tried += did
                idle = 0 if did else idle + 1
                if max_idle_polls is not None and idle >= max_idle_polls:
                    break
                if did < in_flight:
                    # Nothing more due: wait for a wake (or the poll), and let a burst of
                    # signups gather so one claim takes many (fewer writes beside theirs).
                    if not did:
                        (wake or clock).wait(poll_interval)
                    (wake or clock).clear()
                    stop.wait(GATHER)
    finally:
        recovery.forget_worker(worker)
        if owns:
            transport.close()
    return tried


def start_runner(db: Database, settings: Settings, stop: threading.Event, *,
                 wake: threading.Event | None = None, transport: Transport | None = None,
                 restart_after: float = 30.0, in_flight: int | None = None) -> threading.Thread:
    """``run_mail_queue`` in a daemon thread that restarts it after a crash (logged);
    ``transport`` defaults to the configured one, ``in_flight`` to ``round_size``."""

    def guarded() -> None:
        while not stop.is_set():
            try:
                run_mail_queue(db, settings, stop, wake=wake, transport=transport,
                               in_flight=in_flight)
                return
            except MailerError as exc:  # a misconfigured transport: one line, not a trace
                log.error("the mail queue cannot send (%s); trying again in %.0f s", exc,
                          restart_after)
                stop.wait(restart_after)
            except Exception:
                log.exception("the mail queue stopped with an error; restarting in %.0f s",
                              restart_after)
                stop.wait(restart_after)

    thread = threading.Thread(target=guarded, name="mailer-mailqueue", daemon=True)
    thread.start()
    return thread
