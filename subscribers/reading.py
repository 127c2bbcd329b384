"""Reading a subscriber import: a file becomes chunks of validated, first-seen rows, each
prepared for the database as far as that can be done without asking it.

A million-row import spends about as much CPU reading as writing, so big files are read in a
second process (``subscribers.pipeline``). Everything that needs no database happens here,
on that side: parsing and validating each row, noticing a repeated address, matching topic
words to topic ids, ordering each chunk by address (so B-tree inserts touch neighbouring
pages) and building the values a *new* subscriber would be inserted with, already converted
for the driver. The writer (``subscribers.importer``) only decides, row by row, against what
the database holds.

``read_chunks`` yields ``(items, (bytes read, file size))``; each item is a plain tuple
(tuples cross a process boundary cheaply, and this one holds only what the writer reads)::

    (email, email_hash, email_key, line, intent, frequency, topic_ids, insert_values)

``frequency`` is the file's own (None when it gives none); ``insert_values`` follows
``NewSubscribers.COLUMNS`` (``NewSubscribers.details`` picks the person's details from
them), or is None when the row's intent is a suppression, which inserts nobody.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from array import array
from collections import Counter
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from mailer.errors import InvalidInput, NotFound
from mailer.storage.base import utcnow
from subscribers.bulk import converter
from subscribers.csv_files import open_text, read_rows
from subscribers.csv_rows import HeaderMap, RowData, RowError, parse_row
from subscribers.models import ACTIVE, PENDING, SUPPRESSED_STATUSES, Subscriber, Topic

#: Errors and warnings listed one by one; beyond this they are only counted.
MAX_LISTED = 10_000


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
        self.unknown_topics = read.unknown_topics

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
    """Which address hashes this import has already seen, and on which line.

    The first ``memory_limit`` addresses live in an open-addressing table of 64-bit
    fingerprints (12 bytes a slot, instead of ~100 bytes for a set of strings); past that the
    table moves into a temporary SQLite file that is deleted when the import ends, so memory
    stays bounded however long the file is (by default about 25 MB, for the first 1.4
    million addresses; each later one costs a few microseconds on disk).
    """

    def __init__(self, capacity: int = 1 << 14, memory_limit: int = 1_400_000):
        self._keys = array("Q", bytes(8 * capacity))
        self._lines = array("I", bytes(array("I").itemsize * capacity))
        self._size = 0
        self._limit = memory_limit
        self._disk: sqlite3.Connection | None = None

    def add(self, email_key: int, line: int) -> int | None:
        """Remember an address by its ``email_key`` (``subscribers.addresses.email_key``,
        signed 64 bits) at ``line``; return the earlier line if seen."""
        key = (email_key & _UNSIGNED_64) | 1  # the same bits, unsigned; 0 marks an empty slot
        if self._disk is not None:
            return self._add_on_disk(key, line)
        mask = len(self._keys) - 1
        slot = key & mask
        while self._keys[slot]:
            if self._keys[slot] == key:
                return self._lines[slot]
            slot = (slot + 1) & mask
        self._keys[slot], self._lines[slot] = key, line
        self._size += 1
        if self._size >= self._limit:
            self._spill()
        elif self._size * 10 > len(self._keys) * 7:
            self._grow()
        return None

    def close(self) -> None:
        """Drop the temporary file, if any (also done when the object is collected)."""
        if self._disk is not None:
            self._disk.close()
            self._disk = None

    def _grow(self) -> None:
        keys, lines = self._keys, self._lines
        self.__init__(len(keys) * 2, self._limit)
        for key, line in zip(keys, lines, strict=True):
            if key:
                mask = len(self._keys) - 1
                slot = key & mask
                while self._keys[slot]:
                    slot = (slot + 1) & mask
                self._keys[slot], self._lines[slot] = key, line
                self._size += 1

    def _spill(self) -> None:
        # "" opens a private temporary database file that SQLite deletes on close; nothing
        # in it needs to survive a crash, hence no journal and no syncing.
        disk = sqlite3.connect("", isolation_level=None)
        disk.execute("PRAGMA journal_mode=OFF")
        disk.execute("PRAGMA synchronous=OFF")
        disk.execute("PRAGMA cache_size=-16384")
        disk.execute("CREATE TABLE seen (key INTEGER PRIMARY KEY, line INTEGER NOT NULL)")
        disk.execute("BEGIN")
        disk.executemany("INSERT INTO seen VALUES (?, ?)", (
            (_signed(key), line) for key, line in zip(self._keys, self._lines, strict=True)
            if key))
        self._disk = disk
        self._keys, self._lines = array("Q"), array("I")

    def _add_on_disk(self, key: int, line: int) -> int | None:
        found = self._disk.execute("SELECT line FROM seen WHERE key = ?",
                                   (_signed(key),)).fetchone()
        if found is not None:
            return found[0]
        self._disk.execute("INSERT INTO seen VALUES (?, ?)", (_signed(key), line))
        return None


_UNSIGNED_64 = (1 << 64) - 1


def _signed(key: int) -> int:
    """A 64-bit unsigned fingerprint as the signed integer SQLite stores."""
    return key - (1 << 64) if key >= 1 << 63 else key


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


class NewSubscribers:
    """What this import gives the people it creates: their topics (the file's words matched,
    plus ``--topics``), their status, the consent source, and the INSERT values in
    ``COLUMNS`` order converted as the driver of ``drivername`` (e.g. ``sqlite``,
    ``postgresql+psycopg``) takes them. Must pickle: a spawned reader gets a copy."""

    COLUMNS = ("email", "email_key", "name", "zip", "county", "state", "district", "city",
               "frequency", "status", "consent_source", "consent_at", "consent_ip",
               "confirmed_at", "created_at", "updated_at")

    def __init__(self, drivername: str, matcher: TopicMatcher, extra_topics: Iterable[int],
                 *, double_opt_in: bool, source: str):
        self.drivername, self.matcher = drivername, matcher
        self.extra_topics = frozenset(extra_topics)
        self.double_opt_in, self.source = double_opt_in, source
        self._time = None

    #: Where name, ZIP, county, state and district sit among ``COLUMNS``.
    _DETAILS = slice(COLUMNS.index("name"), COLUMNS.index("district") + 1)

    @classmethod
    def details(cls, values: tuple, frequency: str | None) -> tuple:
        """(name, zip, county, state, district, frequency) of a row from its INSERT
        ``values`` and the file's own ``frequency`` (the values hold the default in its
        place when the file gives none)."""
        return (*values[cls._DETAILS], frequency)

    def topic_ids(self, row: RowData, report: ImportReport) -> tuple[int, ...]:
        """The row's topic ids, sorted; counts each word that names no topic in ``report``."""
        ids = set(self.extra_topics)
        for word in row.topics:
            topic_id = self.matcher.match(word)
            if topic_id is None:
                if len(report.unknown_topics) < 1000 or word in report.unknown_topics:
                    report.unknown_topics[word] += 1
            else:
                ids.add(topic_id)
        return tuple(sorted(ids))

    def values(self, row: RowData, now: str) -> tuple | None:
        """The row's INSERT values (``now``: this chunk's converted timestamp); None when the
        row only asks to be suppressed."""
        if row.intent in SUPPRESSED_STATUSES:
            return None
        status = PENDING if self.double_opt_in or row.intent == PENDING else ACTIVE
        convert = self._converter()
        confirmed = row.confirmed_at if status == ACTIVE else None
        joined = self._joined(row)
        return (row.email, row.email_key, row.name, row.zip, row.county, row.state,
                row.district, row.city, row.frequency or "immediate", status,
                f"{self.source} line {row.line}"[:200],
                convert(row.consent_at) if row.consent_at else now, row.consent_ip,
                None if confirmed is None else convert(confirmed),
                now if joined is None else convert(joined), now)

    @staticmethod
    def _joined(row: RowData) -> datetime | None:
        """When the person joined the list, as the file says (their opt-in time, else their
        confirmation time): ``joined`` in segments, the dashboard and the subscriber page is
        that, not the day of the import. A time in the future is not believed."""
        joined = row.consent_at or row.confirmed_at
        return joined if joined is not None and joined <= utcnow() else None

    def now(self):
        """The current time as the driver takes it."""
        return self._converter()(utcnow())

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_time": None}  # the converter is a closure: made anew

    def _converter(self):
        if self._time is None:  # made on first use, in the process that uses it
            dialect = make_url(f"{self.drivername}://").get_dialect()()
            self._time = converter(Subscriber.__table__.c.created_at.type, dialect)
        return self._time


def read_chunks(path: Path, chunk_size: int,
                new: NewSubscribers) -> Generator[tuple, None, ImportReport]:
    """Read and validate ``path``: yield ``(items, (bytes read, file size))`` per chunk of at
    most ``chunk_size`` valid, first-seen rows, in address order (items as in the module
    docstring); return an ImportReport holding what reading found (rows, errors, duplicates,
    unknown topics, encoding, ignored columns). Raises InvalidInput for an unreadable or
    empty file or one with no email column."""
    handle, encoding = open_text(path)
    report = ImportReport(encoding=encoding)
    total = path.stat().st_size
    seen = SeenAddresses()
    with handle, contextlib.closing(seen):
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
                yield _prepared(chunk, new, report), (_position(handle, total), total)
                chunk = []
        if chunk:
            yield _prepared(chunk, new, report), (_position(handle, total), total)
    return report


_BY_EMAIL = itemgetter(0)


def _prepared(chunk: list[RowData], new: NewSubscribers, report: ImportReport) -> list[tuple]:
    now = new.now()
    items = [(row.email, row.email_hash, row.email_key, row.line, row.intent, row.frequency,
              new.topic_ids(row, report), new.values(row, now)) for row in chunk]
    items.sort(key=_BY_EMAIL)
    return items


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
    first = seen.add(row.email_key, line)
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


__all__ = ["ImportReport", "MAX_LISTED", "NewSubscribers", "SeenAddresses", "TopicMatcher",
           "read_chunks"]
