"""Audience figures the dashboard and the API showed from a stored count ask for a recount
(``mailer.delivery.reach``); these run it once the answer has been sent, so no page waits
for a count over a big list."""

from __future__ import annotations

from typing import Any

from fastapi import BackgroundTasks
from fastapi.responses import Response
from starlette.background import BackgroundTask

from mailer.campaigns import actions
from mailer.storage.db import Database

#: What an answer shows of an audience figure (``recount`` is for the server only).
SHOWN = ("count", "now", "in_digests", "counted_at", "error")


def recount_after(response: Response, db: Database, *figures: dict[str, Any] | None
                  ) -> Response:
    """``response``, set to recount every figure given that asks for it once it is sent."""
    queries = _asked(figures)
    if queries:
        response.background = BackgroundTask(_recount, db, queries)
    return response


def recount_later(background: BackgroundTasks, db: Database,
                  *figures: dict[str, Any] | None) -> None:
    """``recount_after`` for an API route that returns data: the recounts join the
    route's background tasks."""
    queries = _asked(figures)
    if queries:
        background.add_task(_recount, db, queries)


def shown(figures: dict[str, Any] | None) -> dict[str, Any] | None:
    """An audience figure as an answer shows it: without the server's ``recount``."""
    if figures is None:
        return None
    return {key: value for key, value in figures.items() if key in SHOWN}


def _asked(figures: tuple[dict[str, Any] | None, ...]) -> list[str]:
    return sorted({f["recount"] for f in figures if f and f.get("recount")})


def _recount(db: Database, queries: list[str]) -> None:
    for query in queries:
        actions.recount_audience(db, query)
