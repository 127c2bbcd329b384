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

import os
import re
from array import array
from collections import Counter
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session

from mailer.errors import InvalidInput, NotFound
from mailer.ingest.models import Topic
from mailer.storage.base import utcnow
from mailer.storage.db import Database
from subscribers.bulk import insert_ignoring as _insert_ignoring
from subscribers.bulk import one_of
from subscribers.csv_rows import HeaderMap, RowData, RowError, open_text, parse_row, read_rows
from subscribers.models import (
    ACTIVE,
    PENDING,
    SUPPRESSED_STATUSES,
    StatusChange,
    Subscriber,
    SubscriberTopic,
    Suppression,
)
from subscribers.pipeline import produced_elsewhere

CHUNK_SIZE = 10_000
#: Errors and warnings listed one by one; beyond this they are only counted.
MAX_LISTED = 10_000
_DETAILS = ("name", "zip", "county", "state", "district", "frequency")


@dataclass
class ImportReport:
    encoding: str = "utf-8"
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    suppressed: int = 0
    kept_suppressed: int = 0
    duplicates: int = 0
    error_count: int = 0
    errors: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    unknown_topics: Counter = field(default_factory=Counter)
    ignored_columns: list[str] = field(default_factory=list)
    started_at: datetime = field(default_factory=utcnow)

    @property
    def skipped(self) -> int:
        return self.error_count + self.duplicates + self.kept_suppressed

    def error(self, line: int, reason: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_LISTED:
            self.errors.append({"line": line, "reason": reason})

    def warn(self, line: int, reason: str) -> None:
        if len(self.warnings) < MAX_LISTED:
            self.warnings.append({"line": line, "reason": reason})

    def take_reading(self, read: ImportReport) -> None:
        """Adopt what reading the file found (``read_chunks``'s report)."""
        self.encoding, self.ignored_columns = read.encoding, read.ignored_columns
        self.rows, self.duplicates, self.error_count = read.rows, read.duplicates, read.error_count
        self.errors, self.warnings = read.errors, read.warnings

    def to_dict(self) -> dict:
        return {
            "created": self.created, "updated": self.updated, "skipped": self.skipped,
            "errors": self.errors, "unchanged": self.unchanged, "suppressed": self.suppressed,
            "kept_suppressed": self.kept_suppressed, "duplicates": self.duplicates,
            "error_count": self.error_count, "warnings": self.warnings,
            "unknown_topics": dict(sorted(self.unknown_topics.items())), "rows": self.rows,
            "encoding": self.encoding, "ignored_columns": self.ignored_columns,
        }


class SeenAddresses:
    """Which address hashes this import has already seen, and on which line: an open-addressing
    table of 64-bit fingerprints (12 bytes a slot) instead of a set of strings (~100 bytes an
    address), so a million-row file costs megabytes, not hundreds of them."""

    def __init__(self, capacity: int = 1 << 14):
        self._keys = array("Q", bytes(8 * capacity))
        self._lines = array("I", bytes(array("I").itemsize * capacity))
        self._size = 0

    def add(self, digest: str, line: int) -> int | None:
        """Remember ``digest`` (hex SHA-256) at ``line``; return the earlier line if seen."""
        key = int(digest[:16], 16) | 1  # 0 marks an empty slot
        mask = len(self._keys) - 1
        slot = key & mask
        while self._keys[slot]:
            if self._keys[slot] == key:
                return self._lines[slot]
            slot = (slot + 1) & mask
        self._keys[slot], self._lines[slot] = key, line
        self._size += 1
        if self._size * 10 > len(self._keys) * 7:
            self._grow()
        return None

    def _grow(self) -> None:
        keys, lines = self._keys, self._lines
        self.__init__(len(keys) * 2)
        for key, line in zip(keys, lines, strict=True):
            if key:
                mask = len(self._keys) - 1
                slot = key & mask
                while self._keys[slot]:
                    slot = (slot + 1) & mask
                self._keys[slot], self._lines[slot] = key, line
                self._size += 1


class TopicMatcher:
    """Maps the topic words a file uses (slugs, names, Mailchimp tags) to topic ids."""

    def __init__(self, session: Session):
        self._ids: dict[str, int] = {}
        for topic_id, slug, name in session.execute(select(Topic.id, Topic.slug, Topic.name)):
            for key in (slug.lower(), name.lower(), _slugify(name)):
                self._ids.setdefault(key, topic_id)

    def match(self, word: str) -> int | None:
        return self._ids.get(word.lower()) or self._ids.get(_slugify(word))

    def require(self, slugs: Iterable[str]) -> list[int]:
        """Ids for ``--topics``. Raises NotFound naming every unknown slug."""
        found, missing = [], []
        for slug in slugs:
            topic_id = self.match(slug)
            (found if topic_id else missing).append(topic_id or slug)
        if missing:
            raise NotFound(f"unknown topic {', '.join(missing)} (see `mailer topics list`)")
        return sorted(set(found))


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


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
    ``pending`` (send them ``subscribers.confirmations``). ``progress(done, total)`` is called
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
    report = ImportReport()
    job = _Job(db, matcher, extra_topics, double_opt_in,
               (source or f"import {path.name}")[:200], report)
    chunks = (_as_rows(produced_elsewhere(read_chunks, path, chunk_size, True)) if parallel
              else read_chunks(path, chunk_size))
    read = yield_all(chunks, lambda chunk, position: _apply(job, chunk, position, progress))
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


def _apply(job: _Job, chunk: list[RowData], position: tuple[int, int],
           progress: Callable[[int, int], None] | None) -> None:
    job.apply(chunk)
    if progress:
        progress(position[0], position[1])


def _as_rows(chunks: Generator) -> Generator[tuple, None, ImportReport]:
    # Plain tuples cross the process boundary: unpickling a slotted dataclass runs a Python
    # __setstate__ per row, which cost the writing process more than the reading saved.
    try:
        while True:
            try:
                chunk, position = next(chunks)
            except StopIteration as stop:
                return stop.value
            yield [RowData(*values) for values in chunk], position
    finally:
        chunks.close()  # a failed write stops the reader process now, not at collection


def read_chunks(path: Path, chunk_size: int,
                as_tuples: bool = False) -> Generator[tuple, None, ImportReport]:
    """Read and validate ``path``: yield ``(rows, (bytes read, file size))`` per chunk of at
    most ``chunk_size`` valid, first-seen rows (RowData, or plain tuples of its fields in
    order with ``as_tuples``); return an ImportReport holding what reading
    found (rows, errors, duplicates, encoding, ignored columns). Raises InvalidInput for an
    unreadable or empty file or one with no email column."""
    handle, encoding = open_text(path)
    report = ImportReport(encoding=encoding)
    total = path.stat().st_size
    seen = SeenAddresses()
    with handle:
        rows = read_rows(handle)
        header = next(rows, None)
        if header is None:
            raise InvalidInput(f"{path} is empty")
        header_map = HeaderMap(header[1])
        report.ignored_columns = header_map.ignored
        chunk: list[RowData] = []
        for line, fields in rows:
            _take(report, seen, line, fields, header_map, chunk)
            if len(chunk) >= chunk_size:
                yield _rows_out(chunk, as_tuples), (_position(handle, total), total)
                chunk = []
        if chunk:
            yield _rows_out(chunk, as_tuples), (_position(handle, total), total)
    return report


_ROW_FIELDS = tuple(f.name for f in fields(RowData))


def _rows_out(chunk: list[RowData], as_tuples: bool) -> list:
    if not as_tuples:
        return chunk
    return [tuple(getattr(row, name) for name in _ROW_FIELDS) for row in chunk]


def _take(report: ImportReport, seen: SeenAddresses, line: int, fields: list[str],
          header: HeaderMap, chunk: list) -> None:
    if not any(f.strip() for f in fields):
        return  # blank lines are layout, not rows
    report.rows += 1
    try:
        row = parse_row(line, fields, header)
    except RowError as exc:
        report.error(line, str(exc))
        return
    first = seen.add(row.email_hash, line)
    if first is not None:
        report.duplicates += 1
        report.warn(line, f"same address as line {first}; row ignored")
        return
    chunk.append(row)


def _position(handle, total: int) -> int:
    try:
        return min(handle.buffer.tell(), total)
    except (AttributeError, OSError, ValueError):
        return 0


class _Job:
    def __init__(self, db, matcher, extra_topics, double_opt_in, source, report):
        self.db, self.matcher, self.extra_topics = db, matcher, extra_topics
        self.double_opt_in, self.source, self.report = double_opt_in, source, report

    def apply(self, chunk: list[RowData]) -> None:
        if chunk:
            with self.db.session() as session:
                if self.db.dialect == "sqlite":
                    # A bigger page cache for this connection (bounded: 64 MiB), so the
                    # indexes of a million-row list stay in memory while it is written.
                    session.execute(text("PRAGMA cache_size = -65536"))
                _ChunkWriter(session, self, chunk).run()


class _ChunkWriter:
    """Applies one chunk with a fixed number of statements, whatever its size."""

    def __init__(self, session: Session, job: _Job, chunk: list[RowData]):
        self.session, self.job, self.chunk = session, job, chunk
        self.report = job.report
        self.now = utcnow()
        self.inserts: list[dict] = []
        self.updates: list[dict] = []
        self.changes: list[dict] = []
        self.new_suppressions: list[dict] = []
        self.links: list[tuple[int | str, int]] = []  # (id or new address, topic id)

    def run(self) -> None:
        existing = self._existing()
        suppressed = set(self.session.scalars(select(Suppression.email_hash).where(
            one_of(self.session, Suppression.email_hash, [r.email_hash for r in self.chunk]))))
        linked = self._links_of([e["id"] for e in existing.values()])
        for row in self.chunk:
            topic_ids = self._topic_ids(row)
            current = existing.get(row.email)
            if current is None:
                self._new(row, row.email_hash in suppressed, topic_ids)
            else:
                self._known(row, current, row.email_hash in suppressed,
                            topic_ids - linked.get(current["id"], set()))
        self._write()

    def _existing(self) -> dict[str, dict]:
        columns = [Subscriber.id, Subscriber.email, Subscriber.status,
                   *(getattr(Subscriber, c) for c in _DETAILS)]
        names = [c.key for c in columns]
        result = self.session.execute(
            select(*columns).where(
                one_of(self.session, Subscriber.email, [r.email for r in self.chunk])))
        return {row[1]: dict(zip(names, row, strict=True)) for row in result}

    def _links_of(self, ids: list[int]) -> dict[int, set[int]]:
        linked: dict[int, set[int]] = {}
        if ids:
            for sid, tid in self.session.execute(
                    select(SubscriberTopic.subscriber_id, SubscriberTopic.topic_id)
                    .where(one_of(self.session, SubscriberTopic.subscriber_id, ids))):
                linked.setdefault(sid, set()).add(tid)
        return linked

    def _topic_ids(self, row: RowData) -> set[int]:
        ids = set(self.job.extra_topics)
        for word in row.topics:
            topic_id = self.job.matcher.match(word)
            if topic_id is None:
                if len(self.report.unknown_topics) < 1000 or word in self.report.unknown_topics:
                    self.report.unknown_topics[word] += 1
            else:
                ids.add(topic_id)
        return ids

    def _new(self, row: RowData, suppressed: bool, topic_ids: set[int]) -> None:
        if row.intent in SUPPRESSED_STATUSES:
            if suppressed:
                self.report.unchanged += 1
            else:
                self.report.suppressed += 1
                self.new_suppressions.append({"email_hash": row.email_hash,
                                              "reason": row.intent, "created_at": self.now})
            return
        if suppressed:
            self.report.kept_suppressed += 1
            return
        status = PENDING if self.job.double_opt_in or row.intent == PENDING else ACTIVE
        self.inserts.append({
            "email": row.email, "email_hash": row.email_hash, "name": row.name, "zip": row.zip,
            "county": row.county, "state": row.state, "district": row.district,
            "frequency": row.frequency or "immediate", "status": status,
            "consent_source": f"{self.job.source} line {row.line}"[:200],
            "consent_at": row.consent_at or self.now, "consent_ip": row.consent_ip,
            "confirmed_at": row.confirmed_at if status == ACTIVE else None,
            "created_at": self.now, "updated_at": self.now,
        })
        self.links.extend((row.email, t) for t in sorted(topic_ids))
        self.report.created += 1

    def _known(self, row: RowData, current: dict, suppressed: bool, new_topics: set[int]) -> None:
        here_suppressed = suppressed or current["status"] in SUPPRESSED_STATUSES
        if row.intent in SUPPRESSED_STATUSES:
            if current["status"] in SUPPRESSED_STATUSES:
                self.report.unchanged += 1
                return
            self._source_says_stop(row, current)
            return
        if here_suppressed:
            self.report.kept_suppressed += 1
            return
        merged = {c: getattr(row, c) or current[c] for c in _DETAILS}
        if merged == {c: current[c] for c in _DETAILS} and not new_topics:
            self.report.unchanged += 1
            return
        self.updates.append({"_id": current["id"], "status": current["status"],
                             "updated_at": self.now, **merged})
        self.links.extend((current["id"], t) for t in sorted(new_topics))
        self.report.updated += 1

    def _source_says_stop(self, row: RowData, current: dict) -> None:
        self.updates.append({"_id": current["id"], "status": row.intent, "updated_at": self.now,
                             **{c: current[c] for c in _DETAILS}})
        self.changes.append({
            "subscriber_id": current["id"], "old_status": current["status"],
            "new_status": row.intent, "at": self.now,
            "cause": f"{self.job.source} line {row.line}: {row.intent} in the source list",
        })
        self.new_suppressions.append({"email_hash": row.email_hash, "reason": row.intent,
                                      "created_at": self.now})
        self.report.updated += 1

    def _write(self) -> None:
        session = self.session
        if self.inserts:
            # In key order, B-tree inserts touch neighbouring pages: far fewer cache misses
            # once the email index outgrows memory (a quarter less CPU at a million rows).
            self.inserts.sort(key=lambda row: row["email"])
            self.links.sort(key=lambda link: (isinstance(link[0], str), link))
            _insert_ignoring(session, Subscriber.__table__, self.inserts, ["email"])
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
        if self.links:
            self._write_links()

    def _write_links(self) -> None:
        # New people's ids are read back in one statement (their addresses as one bound
        # array), then every link goes in as one executemany of plain id pairs: an
        # INSERT … SELECT per link cost a lookup in the email index for each of them.
        new_emails = {a for a, _ in self.links if isinstance(a, str)}
        ids: dict[str, int] = {}
        if new_emails:
            ids = dict(self.session.execute(select(Subscriber.email, Subscriber.id).where(
                one_of(self.session, Subscriber.email, list(new_emails)))).all())
        pairs = [{"subscriber_id": ids.get(a, a) if isinstance(a, str) else a, "topic_id": t}
                 for a, t in self.links]
        # An address another process deleted in between has no id: nothing to link.
        _insert_ignoring(self.session, SubscriberTopic.__table__,
                         [p for p in pairs if not isinstance(p["subscriber_id"], str)],
                         ["subscriber_id", "topic_id"])


__all__ = ["CHUNK_SIZE", "ImportReport", "SeenAddresses", "TopicMatcher", "import_subscribers"]
