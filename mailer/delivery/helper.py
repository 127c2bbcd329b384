"""One send helper process (``python -m mailer.delivery.helper``), started by ``fanout``.

It reads its settings, database URL and campaign from stdin, then runs the engine's worker
loop on that campaign until nothing is claimable or it is told to stop, printing its running
totals as JSON lines for the parent. Kept apart from ``fanout`` because it calls the engine,
which itself uses ``fanout``: this module is the top of that small stack.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import signal
import sys
import threading

from mailer.delivery.engine import send_campaign
from mailer.delivery.fanout import ARGS_END
from mailer.errors import MailerError
from mailer.storage.db import Database, make_engine

log = logging.getLogger("mailer.delivery")


def helper_main() -> None:
    """A helper process: send the campaign until nothing is claimable or told to stop."""

    data = b""
    for line in sys.stdin.buffer:
        if line == ARGS_END:
            break
        data += line
    settings, database_url, campaign_id = pickle.loads(data[:-1])
    stop = threading.Event()
    # Ctrl-C reaches the whole process group: the parent decides and closes our stdin. A
    # SIGTERM (service stop) lets the batches in flight finish and be recorded, as stop does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=_watch_parent, args=(stop,), daemon=True,
                     name="parent-watch").start()
    db = Database(make_engine(database_url))
    out = sys.stdout

    def report(stats) -> None:
        out.write(json.dumps([stats.accepted, stats.failed, stats.skipped, stats.in_doubt])
                  + "\n")
        out.flush()

    try:
        send_campaign(db, settings, campaign_id, stop=stop, progress=report,
                      wait_for_others=False, processes=1)
    except MailerError as exc:  # paused or cancelled meanwhile, cannot render: logged
        log.warning("send helper: %s", exc)
    except BrokenPipeError:  # the parent is gone; what we sent is recorded
        pass
    finally:
        db.dispose()


def _watch_parent(stop: threading.Event) -> None:
    """Stop when stdin closes: the parent asked, or died (kill -9 closes its pipes too)."""
    try:  # the raw descriptor: a daemon thread blocked in a buffered read breaks shutdown
        while os.read(0, 4096):
            pass
    finally:
        stop.set()


if __name__ == "__main__":
    helper_main()
