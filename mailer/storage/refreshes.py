"""One refresher at a time for figures kept in the database and recomputed in the background
(report snapshots, stored audience counts): the process whose claim wins recomputes, the
others leave it to that one, and a failure leaves the old figures shown."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from mailer.storage.db import Database

log = logging.getLogger("mailer.storage")


def refresh_claimed(db: Database, claim: Callable[[Session], bool],
                    store: Callable[[Session], None], what: str) -> bool:
    """Run ``store`` in a transaction of its own when ``claim`` (in a first, committed one)
    makes this process the refresher; True when it stored. Never raises: a background
    task's failure is logged ("refreshing ``what`` failed") and the old figures stay."""
    try:
        with db.session() as session:
            if not claim(session):
                return False
        with db.session() as session:
            store(session)
        return True
    except Exception:  # a background task: log it, keep the page serving the old figures
        log.exception("refreshing %s failed", what)
        return False
