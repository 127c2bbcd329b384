"""The outcome journal: what the provider answered, kept on local disk when the database
could not take it before the process had to exit.

A sender that must stop (SIGTERM, retries exhausted) while outcomes are still unwritten
writes them here, one JSON object per line, into a file of ``MAILER_JOURNAL_DIR``: first as
``*.tmp``, flushed and fsync'd, then renamed to ``*.jsonl`` (and the directory fsync'd), so a
reader only ever sees whole files. Every start of a sender or worker applies the files it finds
before in-doubt recovery (``mailer.delivery.writer.apply_journals``), so rows the provider
accepted never become in doubt because of a database outage, and deletes a file only after
the transaction applying it committed.

This module only reads and writes the files; it never touches the database.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path

from mailer.delivery.claims import Claim
from mailer.delivery.handoff import Outcome
from mailer.settings import Settings

VERSION = 1
SUFFIX = ".jsonl"


def journal_dir(settings: Settings) -> Path:
    return Path(settings.journal_dir)


def write(settings: Settings, outcomes: list[Outcome], *, worker: str) -> Path:
    """Write ``outcomes`` durably into a new journal file; returns its path. Raises OSError
    when the directory cannot be written (the caller logs every outcome then)."""
    folder = journal_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"outcomes-{time.strftime('%Y%m%dT%H%M%S')}-{socket.gethostname()}-{os.getpid()}-" \
           f"{uuid.uuid4().hex[:6]}"
    tmp, final = folder / f"{name}.tmp", folder / f"{name}{SUFFIX}"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            for out in outcomes:
                handle.write(json.dumps(to_record(out, worker), separators=(",", ":")) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)  # a disk full mid-write leaves no half file behind
        if exc.filename is None:  # a failed write names no file: say which one
            raise OSError(exc.errno, exc.strerror, str(tmp)) from exc
        raise
    _fsync_dir(folder)
    return final


def files(settings: Settings) -> list[Path]:
    """The complete journal files waiting to be applied, oldest first."""
    folder = journal_dir(settings)
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f"*{SUFFIX}"))


def read(path: Path) -> list[Outcome]:
    """The outcomes of one file. Raises ValueError for a line that is not a journal record."""
    outcomes = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            outcomes.append(from_record(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path.name} line {number}: not a journal record ({exc})") from None
    return outcomes


def done(path: Path) -> None:
    """The file's outcomes are committed: remove it."""
    path.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def set_aside(path: Path) -> Path:
    """A file that cannot be read is kept for a person (renamed, never applied again)."""
    target = path.with_suffix(".rejected")
    os.replace(path, target)
    return target


def to_record(out: Outcome, worker: str) -> dict:
    return {"v": VERSION, "campaign": out.claim.campaign_id, "batch": out.claim.batch_id,
            "worker": worker, "ids": out.claim.ids, "all_accepted": out.all_accepted,
            "message_id": out.message_id, "results": [list(r) for r in out.results],
            "in_doubt": out.in_doubt, "in_doubt_reason": out.in_doubt_reason,
            "release_reason": out.release_reason}


def from_record(data: dict) -> Outcome:
    if data.get("v") != VERSION:
        raise ValueError(f"unknown version {data.get('v')!r}")
    claim = Claim(str(data["batch"]), int(data["campaign"]),
                  [(int(i), "", None, None) for i in data["ids"]])
    return Outcome(claim, all_accepted=bool(data["all_accepted"]),
                   message_id=data["message_id"],
                   results=[(int(i), bool(ok), mid, err) for i, ok, mid, err in data["results"]],
                   in_doubt=[int(i) for i in data["in_doubt"]],
                   in_doubt_reason=str(data["in_doubt_reason"]),
                   release_reason=data["release_reason"])


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
