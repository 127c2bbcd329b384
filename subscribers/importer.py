"""Streaming, idempotent subscriber import that never overrides a constituent's choice.

``import_subscribers(db, path)`` reads the file once, a chunk of rows at a time, and applies
each chunk in its own transaction with bulk statements (no ORM object per row), so memory stays
flat and a million rows take seconds. Each row ends in exactly one outcome:

==================  ==========================================================================
created             a new subscriber (``pending`` with double opt-in)
updated             an existing subscriber gained details or topics, or the source list says
                    they unsubscribed, bounced or complained (the import applies that)
unchanged           nothing to change (a second run of the same file is all ``unchanged``)
suppressed          the source says unsubscribed/bounced/complained for an address we do not
                    have: only its hash goes on the suppression list, no personal data
kept_suppressed     the address unsubscribed, bounced, complained or was forgotten here: the
                    row is ignored, the constituent's choice wins
duplicates          the same address (in any case) as an earlier row: ignored, with a warning
errors              invalid address, ZIP, state, status or frequency: skipped, with the line
==================  ==========================================================================

``skipped`` = errors + duplicates + kept_suppressed, so created + updated + unchanged +
suppressed + skipped = rows.

Unknown topics: a topic the file names that does not exist is a *warning*, not an error row.
The person's consent to hear from the office does not depend on a tag typo, so they are
imported with the topics that do exist and ``unknown_topics`` counts each missing slug; the
office can create the topic and re-import (idempotent) to add it.
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session

from mailer.storage.base import utcnow
from mailer.storage.db import Database
from subscribers.bulk import insert_ignoring as _insert_ignoring
from subscribers.bulk import insert_prepared, one_of
from subscribers.models import (
    SUPPRESSED_STATUSES,
    StatusChange,
    Subscriber,
    SubscriberTopic,
    Suppression,
)
from subscribers.pipeline import produced_elsewhere
from subscribers.reading import (
    ImportReport,
    NewSubscribers,
    SeenAddresses,
    TopicMatcher,
    read_chunks,
)

CHUNK_SIZE = 20_000
_DETAILS = ("name", "zip", "county", "state", "district", "frequency")


#: Files at least this big are read and validated in a second process (see
#: ``subscribers.pipeline``); below it, starting one costs more than it saves.
PARALLEL_MIN_BYTES = 4 << 20


def import_subscribers(
    db: Database, path: Path | str, *, topics: Iterable[str] = (), double_opt_in: bool = False,
    source: str | None = None, chunk_size: int = CHUNK_SIZE,
    progress: Callable[[int, int], None] | None = None, parallel: bool | None = None,
) -> ImportReport:
    """Import ``path``; see the module docstring for what happens to each row.

    ``topics`` (slugs) are added to every row. With ``double_opt_in`` new people are
    ``pending`` (send them ``mailer.delivery.confirmations``). ``progress(done, total)`` is called
    with bytes read after each chunk. ``parallel`` reads the file in a second process (None:
    when the file is big and there is more than one core); the outcome is the same either way.
    Raises InvalidInput for an unreadable file or one with no email column, NotFound for an
    unknown ``topics`` slug; rows already committed stay (a rerun is idempotent).
    """
    path = Path(path)
    with db.session() as session:
        matcher = TopicMatcher(session)
        extra_topics = matcher.require(t.strip() for t in topics if t.strip())
    total = path.stat().st_size if path.is_file() else 0
    if parallel is None:
        parallel = total >= PARALLEL_MIN_BYTES and (os.cpu_count() or 1) > 1
    source = (source or f"import {path.name}")[:200]
    new = NewSubscribers(db.engine.url.drivername, matcher, extra_topics,
                         double_opt_in=double_opt_in, source=source)
    report = ImportReport()
    job = _Job(db, source, report)
    chunks = (_unpacked(produced_elsewhere(_packed_chunks, path, chunk_size, new)) if parallel
              else read_chunks(path, chunk_size, new))
    read = yield_all(chunks, lambda items, position: _apply(job, items, position, progress))
    report.take_reading(read)
    if progress:
        progress(total, total)
    return report


def yield_all(chunks: Generator, handle: Callable) -> Any:
    """Pass each item of ``chunks`` to ``handle``; return the generator's return value."""
    while True:
        try:
            item = next(chunks)
        except StopIteration as stop:
            return stop.value
        try:
            handle(*item)
        except BaseException:
            chunks.close()
            raise


def _packed_chunks(path: Path, chunk_size: int,
                   new: NewSubscribers) -> Generator[tuple, None, ImportReport]:
    """``read_chunks`` for the reader process, each chunk's items packed with ``marshal``:
    for these tuples of plain values it is twice as fast as the pickling the queue would do
    (~2 s of a million-row import's reading). Items marshal cannot hold (datetimes, as
    PostgreSQL's driver takes them) go as they are."""
    chunks = read_chunks(path, chunk_size, new)
    while True:
        try:
            items, position = next(chunks)
        except StopIteration as stop:
            return stop.value
        try:
            yield marshal.dumps(items), position
        except ValueError:  # "unmarshallable object"
            yield items, position


def _unpacked(chunks: Generator) -> Generator[tuple, None, ImportReport]:
    """The other end of ``_packed_chunks``; closing it closes ``chunks`` (stops the reader)."""
    try:
        while True:
            try:
                items, position = next(chunks)
            except StopIteration as stop:
                return stop.value
            yield (marshal.loads(items) if isinstance(items, bytes) else items), position
    finally:
        chunks.close()


def _apply(job: _Job, chunk: list[tuple], position: tuple[int, int],
           progress: Callable[[int, int], None] | None) -> None:
    job.apply(chunk)
    if progress:
        progress(position[0], position[1])


class _Job:
    def __init__(self, db: Database, source: str, report: ImportReport):
        self.db, self.source, self.report = db, source, report

    def apply(self, items: list[tuple]) -> None:
        if not items:
            return
        with self.db.session() as session:
            if self.db.dialect == "sqlite":
                # A bigger page cache for this connection (bounded: 64 MiB), so the indexes
                # of a million-row list stay in memory while it is written.
                session.execute(text("PRAGMA cache_size = -65536"))
            _ChunkWriter(session, self, items).run()


class _ChunkWriter:
    """Applies one chunk (items as ``subscribers.reading`` prepares them, in address order)
    with a fixed number of statements, whatever its size."""

    def __init__(self, session: Session, job: _Job, items: list[tuple]):
        self.session, self.job, self.items = session, job, items
        self.report = job.report
        self.now = utcnow()
        self.inserts: list[tuple] = []
        self.updates: list[dict] = []
        self.changes: list[dict] = []
        self.new_suppressions: list[dict] = []
        self.new_links: list[tuple[str, int]] = []  # (new person's address, topic id)
        self.links: list[tuple[int, int]] = []  # (known person's id, topic id)

    def run(self) -> None:
        existing = self._existing()
        suppressed = set(self.session.scalars(select(Suppression.email_hash).where(
            one_of(self.session, Suppression.email_hash, [item[1] for item in self.items]))))
        linked = self._links_of([e["id"] for e in existing.values()])
        for email, digest, key, line, intent, frequency, topic_ids, values in self.items:
            current = existing.get(email)
            if current is None:
                self._new(email, digest, key, intent, digest in suppressed, topic_ids, values)
            elif intent in SUPPRESSED_STATUSES:
                if current["status"] in SUPPRESSED_STATUSES:
                    self.report.unchanged += 1
                else:
                    self._source_says_stop(digest, key, line, intent, current)
            elif digest in suppressed or current["status"] in SUPPRESSED_STATUSES:
                self.report.kept_suppressed += 1
            else:
                self._known(NewSubscribers.details(values, frequency), current,
                            set(topic_ids) - linked.get(current["id"], set()))
        self._write()

    def _existing(self) -> dict[str, dict]:
        columns = [Subscriber.id, Subscriber.email, Subscriber.status,
                   *(getattr(Subscriber, c) for c in _DETAILS)]
        names = [c.key for c in columns]
        result = self.session.execute(
            select(*columns).where(
                one_of(self.session, Subscriber.email, [item[0] for item in self.items])))
        return {row[1]: dict(zip(names, row, strict=True)) for row in result}

    def _links_of(self, ids: list[int]) -> dict[int, set[int]]:
        linked: dict[int, set[int]] = {}
        if ids:
            for sid, tid in self.session.execute(
                    select(SubscriberTopic.subscriber_id, SubscriberTopic.topic_id)
                    .where(one_of(self.session, SubscriberTopic.subscriber_id, ids))):
                linked.setdefault(sid, set()).add(tid)
        return linked

    def _new(self, email: str, digest: str, key: int, intent: str, suppressed: bool,
             topic_ids: tuple[int, ...], values: tuple | None) -> None:
        if values is None:  # the source says unsubscribed, bounced or complained
            if suppressed:
                self.report.unchanged += 1
            else:
                self.report.suppressed += 1
                self.new_suppressions.append({"email_hash": digest, "email_key": key,
                                              "reason": intent, "created_at": self.now})
            return
        if suppressed:
            self.report.kept_suppressed += 1
            return
        self.inserts.append(values)
        self.new_links.extend((email, t) for t in topic_ids)
        self.report.created += 1

    def _known(self, details: tuple, current: dict, new_topics: set[int]) -> None:
        """An active or pending person the file lists again: fill in what the file adds
        (``details`` in ``_DETAILS`` order; an empty one keeps what we have)."""
        merged = {c: value or current[c] for c, value in zip(_DETAILS, details, strict=True)}
        if merged == {c: current[c] for c in _DETAILS} and not new_topics:
            self.report.unchanged += 1
            return
        self.updates.append({"_id": current["id"], "status": current["status"],
                             "updated_at": self.now, **merged})
        self.links.extend((current["id"], t) for t in sorted(new_topics))
        self.report.updated += 1

    def _source_says_stop(self, digest: str, key: int, line: int, intent: str,
                          current: dict) -> None:
        self.updates.append({"_id": current["id"], "status": intent, "updated_at": self.now,
                             **{c: current[c] for c in _DETAILS}})
        self.changes.append({
            "subscriber_id": current["id"], "old_status": current["status"],
            "new_status": intent, "at": self.now,
            "cause": f"{self.job.source} line {line}: {intent} in the source list",
        })
        self.new_suppressions.append({"email_hash": digest, "email_key": key,
                                      "reason": intent, "created_at": self.now})
        self.report.updated += 1

    def _write(self) -> None:
        session = self.session
        # The items come in address order, so these inserts touch neighbouring pages of the
        # email index: far fewer cache misses once it outgrows memory.
        insert_prepared(session, Subscriber.__table__, NewSubscribers.COLUMNS, self.inserts,
                        ["email"])
        if self.updates:
            table = Subscriber.__table__
            values = {c: bindparam(c) for c in ("status", "updated_at", *_DETAILS)}
            session.execute(update(table).where(table.c.id == bindparam("_id")).values(values),
                            self.updates)
        if self.changes:
            session.execute(StatusChange.__table__.insert(), self.changes)
        if self.new_suppressions:
            _insert_ignoring(session, Suppression.__table__, self.new_suppressions,
                             ["email_hash"])
        self._write_links()

    def _write_links(self) -> None:
        # New people's ids are read back in one statement (their addresses as one bound
        # array), then every link goes in as one executemany of plain id pairs: an
        # INSERT … SELECT per link cost a lookup in the email index for each of them.
        ids: dict[str, int] = {}
        if self.new_links:
            ids = dict(self.session.execute(select(Subscriber.email, Subscriber.id).where(
                one_of(self.session, Subscriber.email,
                       list({a for a, _ in self.new_links})))).all())
        # An address another process deleted in between has no id: nothing to link. New
        # people's ids follow their (sorted) addresses, so these pairs come in key order too.
        pairs = sorted(self.links) + [(ids[a], t) for a, t in self.new_links if a in ids]
        insert_prepared(self.session, SubscriberTopic.__table__, ("subscriber_id", "topic_id"),
                        pairs, ["subscriber_id", "topic_id"])


__all__ = ["CHUNK_SIZE", "ImportReport", "SeenAddresses", "TopicMatcher", "import_subscribers"]
