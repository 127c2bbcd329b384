"""Importing a list of people, as every face does it: read the file, then (double opt-in)
ask each new person to confirm. The CLI's ``subscribers import`` and the dashboard's upload
call ``import_list`` and print the same report."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mailer.delivery.confirmations import send_confirmations
from mailer.settings import Settings
from mailer.storage.db import Database
from subscribers.importer import import_subscribers


def import_list(db: Database, settings: Settings, signer, path: Path | str, *,
                topics: Iterable[str] = (), double_opt_in: bool = False,
                source: str | None = None,
                progress: Callable[[int, int], None] | None = None,
                send_now: bool = True) -> dict[str, Any]:
    """Import ``path`` (see ``subscribers.importer``) and return its report as a dict; with
    ``double_opt_in`` the new people are pending, the emails asking them to confirm are
    queued, and the report's ``confirmations`` says how they went (``send_now``: sent here,
    ``{"sent", "failed"}``) or how many were queued for the queue runner (``{"queued"}``,
    what a web request asks for). Raises what ``import_subscribers`` raises."""
    report = import_subscribers(db, path, topics=topics, double_opt_in=double_opt_in,
                                source=source, progress=progress)
    data = report.to_dict()
    if double_opt_in:
        data["confirmations"] = send_confirmations(db, settings, signer,
                                                   created_since=report.started_at,
                                                   send_now=send_now)
    return data
