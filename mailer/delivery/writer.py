"""Writing what the provider answered: the held-outcomes buffer of one send, and the journal
replay at start.

``OutcomeWriter`` holds every ``Outcome`` the hand-off threads returned that the database
does not have yet. ``commit(work)`` writes them all, and runs ``work`` (the next claim) in the
SAME transaction; only once that transaction committed are they dropped from the buffer, so a
database that goes away mid-commit loses nothing: the outcomes stay held and the next try
writes them again (every write is idempotent: it moves only rows still ``sending`` or
``in_doubt`` of that batch). ``spill()`` is the last resort when the process must exit with
outcomes still held: they go to the local journal (``mailer.delivery.journal``); when that
disk is full as well, it logs them and raises ``UnrecordedOutcomes`` naming what was lost.

``apply_journals(db, settings)`` runs at every start of a sender or worker, before in-doubt
recovery: it writes journaled outcomes in one transaction per file (moving only rows still
``sending``/``in_doubt`` of the same batch: never a later state) and removes the file after
the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session

from mailer.delivery import claims, journal
from mailer.delivery.handoff import Outcome
from mailer.errors import MailerError
from mailer.settings import Settings
from mailer.storage.db import Database

log = logging.getLogger("mailer.delivery")
T = TypeVar("T")


def write_outcome(session: Session, out: Outcome, *, only_open: bool = False) -> None:
    """Record one batch's outcome (the caller commits). ``only_open`` when replaying a journal:
    rows that moved on since are left wholly untouched."""
    batch = out.claim.batch_id
    if out.all_accepted:
        claims.record_batch_accepted(session, batch, out.claim.ids, out.message_id,
                                     only_open=only_open)
        return
    claims.record_results(session, batch, out.results, only_open=only_open)
    claims.mark_in_doubt(session, batch, out.in_doubt, out.in_doubt_reason)
    if out.release_reason is not None:
        settled = {r[0] for r in out.results} | set(out.in_doubt)
        rest = [i for i in out.claim.ids if i not in settled]
        claims.release(session, batch, rest, out.release_reason)


class OutcomeWriter:
    """The outcomes of one send not yet in the database (used by the sender's thread only)."""

    def __init__(self, db: Database, settings: Settings, worker: str):
        self.db, self.settings, self.worker = db, settings, worker
        self.held: list[Outcome] = []

    def hold(self, out: Outcome) -> None:
        self.held.append(out)

    @property
    def batches(self) -> set[str]:
        return {out.claim.batch_id for out in self.held}

    def commit(self, work: Callable[[Session], T] | None = None) -> tuple[list[Outcome], T | None]:
        """Write every held outcome and run ``work`` in one transaction. Returns the outcomes
        written (no longer held) and what ``work`` returned. On any error nothing is dropped."""
        outcomes = list(self.held)
        with self.db.session() as session:
            for out in outcomes:
                write_outcome(session, out)
            result = work(session) if work is not None else None
        del self.held[:len(outcomes)]
        return outcomes, result

    def spill(self, trouble: str = "database unreachable") -> None:
        """The process must go with outcomes unwritten (``trouble`` says why, e.g. "disk
        full"): journal them. When even that fails (the journal's disk is full too), log
        every one, so a person can still tell who was sent what, and raise
        ``UnrecordedOutcomes`` saying what could not be written where."""
        if not self.held:
            return
        try:
            path = journal.write(self.settings, self.held, worker=self.worker)
        except OSError as exc:
            log.critical("could not journal %d batches' outcomes (%s); the provider accepted "
                         "them: %s", len(self.held), exc,
                         [journal.to_record(o, self.worker) for o in self.held])
            raise UnrecordedOutcomes(self.held, trouble, exc) from exc
        log.error("%s: %d batches' outcomes written to %s; the next start records them",
                  trouble, len(self.held), path)
        self.held.clear()


class UnrecordedOutcomes(MailerError):
    """What the provider answered could be written neither to the database nor to the
    journal; the outcomes are in the log (critical), and their rows stay ``sending``."""

    def __init__(self, held: list[Outcome], trouble: str, error: OSError):
        rows = sum(len(out.claim.ids) for out in held)
        campaigns = ", ".join(str(c) for c in sorted({out.claim.campaign_id for out in held}))
        where = f"{error.strerror or error}: {error.filename}" if error.filename else str(error)
        super().__init__(
            f"could not record the provider's answers for {rows} recipients ({len(held)} "
            f"batches) of campaign {campaigns}: {trouble}, and the journal could not be "
            f"written ({where}); they are in the log above. Do not re-send them: free space, "
            f"then record them from the log or resolve them with `mailer campaigns send`")
        self.held = list(held)


def apply_journals(db: Database, settings: Settings) -> int:
    """Record every journaled outcome (before in-doubt recovery); returns how many batches'
    outcomes were applied. A file is removed only after its transaction committed; one that
    cannot be read is set aside (renamed ``*.rejected``) and logged."""
    applied = 0
    for path in journal.files(settings):
        try:
            outcomes = journal.read(path)
        except (ValueError, OSError) as exc:
            log.error("journal %s set aside: %s", journal.set_aside(path), exc)
            continue
        with db.session() as session:
            for out in outcomes:
                write_outcome(session, out, only_open=True)
        journal.done(path)
        applied += len(outcomes)
        log.warning("journal %s: recorded %d batches' outcomes", path.name, len(outcomes))
    return applied
