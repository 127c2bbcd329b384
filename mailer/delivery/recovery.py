"""Resolving rows whose fate is unknown, without ever sending anyone a second copy on a guess.

``recover(db, settings, campaign_id)`` is what a sender or worker runs on start: first the
outcomes journaled by a sender that had to exit while the database was away
(``mailer.delivery.writer.apply_journals``), so rows the provider accepted are recorded as
such, then the steps below.

A sender that crashed, was killed or lost its connection mid-request leaves rows in
``sending`` (or puts them in ``in_doubt`` itself when a request went out but no answer came
back). Recovery runs at the start of every ``mailer campaigns send`` and periodically in
every worker:

1. ``sending`` rows whose lease expired, or whose worker is a process on this machine that no
   longer exists, become ``in_doubt``.
2. ``in_doubt`` rows with evidence of acceptance become ``accepted``: any provider event for
   the delivery (SendGrid's ``processed`` carries our ``delivery_id`` custom arg), or, for
   the outbox transport, the message file itself.
3. Rows still without evidence ``MAILER_IN_DOUBT_GRACE`` seconds after their hand-off are
   re-queued (``MAILER_IN_DOUBT_POLICY=resend``) or held for a person (``hold``).
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from mailer.delivery.records import Delivery
from mailer.delivery.records import DeliveryStatus as DS
from mailer.delivery.writer import apply_journals
from mailer.settings import Settings
from mailer.storage.base import utcnow
from mailer.storage.db import Database
from mailer.tracking.models import DeliveryEventRow
from mailer.transports.base import Recipient
from mailer.transports.outbox import message_filename

TABLE = Delivery.__table__
C = TABLE.c
HOST = socket.gethostname()
#: Worker names of senders alive in this process (a name of this pid not listed is dead).
_LIVE: set[str] = set()
_LIVE_LOCK = threading.Lock()


def new_worker_name() -> str:
    """``host:pid:tag``, registered as alive until ``forget_worker``."""
    name = f"{HOST}:{os.getpid()}:{os.urandom(3).hex()}"
    with _LIVE_LOCK:
        _LIVE.add(name)
    return name


def forget_worker(name: str) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(name)


def worker_is_gone(name: str | None) -> bool:
    """True only when we can be sure: a process on this machine that no longer runs (or a
    sender of this very process that has finished). Other machines' workers are trusted until
    their lease expires."""
    if not name:
        return False
    host, _, rest = name.partition(":")
    pid_text = rest.partition(":")[0]
    if host != HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        with _LIVE_LOCK:
            return name not in _LIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"


@dataclass(slots=True)
class Resolution:
    expired: int = 0
    accepted: int = 0
    requeued: int = 0
    held: int = 0
    waiting: int = 0
    #: When the earliest waiting row's grace ends.
    next_deadline: datetime | None = None


def recover(db: Database, settings: Settings, campaign_id: int) -> Resolution:
    """Journaled outcomes first, then ``resolve_in_doubt`` (each in its own transaction)."""
    apply_journals(db, settings)
    with db.session() as session:
        return resolve_in_doubt(session, settings, campaign_id)


def expire_abandoned(session: Session, campaign_id: int, now: datetime | None = None) -> int:
    """``sending`` rows whose lease expired or whose worker is gone become ``in_doubt``."""
    now = now or utcnow()
    workers = session.scalars(
        select(C.worker).where(C.campaign_id == campaign_id, C.status == DS.SENDING).distinct()
    ).all()
    gone = [w for w in workers if worker_is_gone(w)]
    abandoned = C.lease_until < now
    if gone:
        abandoned = or_(abandoned, C.worker.in_(gone))
    result = session.execute(
        update(TABLE)
        .where(C.campaign_id == campaign_id, C.status == DS.SENDING, abandoned)
        .values(status=DS.IN_DOUBT, lease_until=None, updated_at=now,
                last_error="in doubt: its sender stopped after claiming it; waiting for "
                           "evidence that the provider accepted it")
    )
    return result.rowcount or 0


def resolve_in_doubt(session: Session, settings: Settings, campaign_id: int,
                     now: datetime | None = None) -> Resolution:
    """Expire abandoned leases, then settle every in-doubt row that can be settled now."""
    now = now or utcnow()
    out = Resolution(expired=expire_abandoned(session, campaign_id, now))
    in_doubt = and_(C.campaign_id == campaign_id, C.status == DS.IN_DOUBT)
    evidence = exists().where(DeliveryEventRow.delivery_id == C.id)
    out.accepted = session.execute(
        update(TABLE).where(in_doubt, evidence)
        .values(status=DS.ACCEPTED, last_error=None, updated_at=now,
                sent_at=func.coalesce(C.sent_at, C.claimed_at))
    ).rowcount or 0
    if settings.transport == "outbox":
        out.accepted += _accept_written_files(session, settings, campaign_id, now)
    cutoff = now - timedelta(seconds=settings.in_doubt_grace)
    overdue = and_(in_doubt, or_(C.claimed_at.is_(None), C.claimed_at <= cutoff))
    if settings.in_doubt_policy == "resend":
        out.requeued = session.execute(
            update(TABLE).where(overdue)
            .values(status=DS.PENDING, batch_id=None, worker=None, updated_at=now,
                    last_error=f"re-sent: no evidence of acceptance within "
                               f"{settings.in_doubt_grace} s (MAILER_IN_DOUBT_POLICY=resend)")
        ).rowcount or 0
    else:
        out.held = session.scalar(select(func.count()).select_from(TABLE).where(overdue)) or 0
    waiting = session.execute(
        select(func.count(), func.min(C.claimed_at)).select_from(TABLE)
        .where(in_doubt, C.claimed_at > cutoff)
    ).one()
    out.waiting = waiting[0] or 0
    if waiting[1] is not None:
        first = waiting[1]
        out.next_deadline = (first if first.tzinfo else first.replace(tzinfo=now.tzinfo)) \
            + timedelta(seconds=settings.in_doubt_grace)
    return out


def _accept_written_files(session: Session, settings: Settings, campaign_id: int,
                          now: datetime) -> int:
    """The outbox's evidence is the file itself (written atomically, named by delivery)."""

    ids = session.scalars(select(C.id).where(C.campaign_id == campaign_id,
                                             C.status == DS.IN_DOUBT)).all()
    found = [i for i in ids if (Path(settings.outbox_dir) / message_filename(
        campaign_id, Recipient(email="", delivery_id=i))).exists()]
    if found:
        session.execute(update(TABLE).where(C.id.in_(found), C.status == DS.IN_DOUBT)
                        .values(status=DS.ACCEPTED, last_error=None, updated_at=now,
                                sent_at=func.coalesce(C.sent_at, C.claimed_at)))
    return len(found)


def requeue_held(session: Session, campaign_id: int, by: str | None = None) -> int:
    """A person decided: re-send every in-doubt row of the campaign now."""
    return session.execute(
        update(TABLE).where(C.campaign_id == campaign_id, C.status == DS.IN_DOUBT)
        .values(status=DS.PENDING, batch_id=None, worker=None, updated_at=utcnow(),
                last_error=f"re-sent on request{f' by {by}' if by else ''} after being in doubt")
    ).rowcount or 0
