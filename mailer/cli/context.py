"""Per-process state for commands: settings, the database, output helpers.

Commands call ``settings()`` and ``database()``; both are created on first use (opening the
database also creates or upgrades the schema). ``reset()`` forgets them (tests).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mailer.scheduling.policy import format_local
from mailer.settings import Settings, get_settings
from mailer.storage.db import Database, open_database
from mailer.storage.db import secret_key as _secret_key
from mailer.tokens import TokenSigner

_state: dict[str, Any] = {}


def settings() -> Settings:
    return get_settings()


def database() -> Database:
    if "db" not in _state:
        _state["db"] = open_database(settings())
    return _state["db"]


def signer():
    """The process's TokenSigner (secret from settings or the database)."""

    if "signer" not in _state:
        _state["signer"] = TokenSigner(_secret_key(database(), settings()))
    return _state["signer"]


def reset() -> None:
    db = _state.pop("db", None)
    if db is not None:
        db.dispose()
    _state.clear()
    get_settings.cache_clear()


def stdout() -> Console:
    return Console(file=sys.stdout, soft_wrap=True)


def stderr() -> Console:
    return Console(file=sys.stderr, soft_wrap=True)


def emit(data: Any, as_json: bool, human: Callable[[Console, Any], None] | None = None) -> None:
    """Print ``data`` as exactly one JSON document (``--json``) or in human form."""
    if as_json or human is None:
        sys.stdout.write(json.dumps(data, default=str, ensure_ascii=False, indent=None) + "\n")
        sys.stdout.flush()
        return
    human(stdout(), data)


def service_logging() -> None:
    """For long-running processes (run, serve, scheduler, worker): timestamped lines on stderr
    and the structured JSON lines of ``mailer.events`` (one per hand-off and provider event).
    The timestamps are in the office's zone, like every time the product shows."""
    logging.getLogger("mailer").setLevel(logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(OfficeTimeFormatter("%(asctime)s %(levelname)s %(message)s"))


class OfficeTimeFormatter(logging.Formatter):
    """Log timestamps as ``2026-11-23 07:00:05 CST``: the office's zone, named, to the second."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, settings().zone)
        return moment.strftime(datefmt or "%Y-%m-%d %H:%M:%S %Z")


class progress:
    """``with progress("importing") as update:`` a rich bar on stderr, on a terminal only.

    ``update(done, total)`` moves it; the context yields None when no bar is shown, so callers
    pass it straight on as an optional callback.
    """

    def __init__(self, label: str):
        self.label, self.bar, self.task = label, None, None

    def __enter__(self):
        if not show_progress():
            return None
        self.bar = Progress(TextColumn(self.label), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=stderr(), transient=True)
        self.bar.start()
        self.task = self.bar.add_task(self.label, total=None)
        return self.update

    def update(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *_exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def show_progress() -> bool:
    """Progress bars only on a terminal, never in pipes, CI or --json output."""
    return sys.stderr.isatty()


def local(value: datetime | str | None, empty: str = "") -> str:
    """A time as every command shows it: ``2026-11-23 07:00 CST``, in the office's zone
    (MAILER_TIMEZONE). Takes an aware datetime or the ISO 8601 text the JSON output holds."""
    if value is None or value == "":
        return empty
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return format_local(moment, settings())
