"""The release actions every face calls: import (``mailer releases import``, the dashboard's
upload and address form), tag and untag.

Each opens its own unit of work on the database it is given, so the CLI and the dashboard
do exactly the same thing and get the same answer back as plain data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.exc import IntegrityError

from mailer.ingest.service import (
    SourceReport,
    get_release,
    import_report,
    release_to_dict,
)
from mailer.ingest.sources import Loaded
from mailer.ingest.topics import set_tag
from mailer.settings import Settings
from mailer.storage.db import Database

OUTCOMES = ("created", "updated", "existing")


@dataclass
class ImportResult:
    """What one import did. ``rows``: every release the sources carried, as
    ``release_to_dict`` plus ``"outcome"`` (created, updated or existing)."""

    rows: list[dict[str, Any]]
    sources: list[SourceReport]
    summary: str
    campaigns_touched: list[int]

    def created(self) -> list[dict[str, Any]]:
        """The contract's list: the releases created, without the ``outcome`` key."""
        return [{k: v for k, v in row.items() if k != "outcome"}
                for row in self.rows if row["outcome"] == "created"]


def import_releases(db: Database, sources: list[str | Loaded], settings: Settings, *,
                    client: httpx.Client | None = None,
                    progress: Callable[[int, int], None] | None = None) -> ImportResult:
    """Import paths, http(s) URLs, ``-`` or uploaded files, all or nothing, and say what
    happened to each release and each source. Raises IngestError (one line naming the
    source) when any source cannot be read or parsed; nothing is stored then."""
    for attempt in (1, 2):
        try:
            with db.session() as session:
                report = import_report(session, sources, settings, client=client,
                                       progress=progress)
                rows = [{**release_to_dict(release), "outcome": outcome}
                        for outcome in OUTCOMES for release in getattr(report, outcome)]
                return ImportResult(rows, report.sources, report.summary(),
                                    report.campaigns_touched)
        except IntegrityError:
            if attempt == 2:  # pragma: no cover - needs two racing imports twice in a row
                raise
            # Another import stored the same release between our check and our insert;
            # a second pass sees it and skips it.
    raise AssertionError("unreachable")  # pragma: no cover


def set_release_tag(db: Database, release_id: int, topic: str, *, on: bool) -> dict[str, Any]:
    """Staff tag (``on``) or untag a release with a topic (slug or name); the tagger never
    undoes a staff choice. Returns the release as ``release_to_dict``. Raises NotFound."""
    with db.session() as session:
        release = get_release(session, release_id)
        set_tag(session, release, topic, on=on)
        return release_to_dict(release)

