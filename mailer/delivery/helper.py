"""One send helper process (``python -m mailer.delivery.helper``), started by ``fanout``.

It reads its settings, database URL and campaign from stdin, then takes a worker's turn on
that campaign (``pipeline.send_share``) until nothing is claimable or it is told to stop,
printing its running totals as JSON lines for the parent. Kept apart from ``fanout`` (which
the engine uses) so that the process entry point sits on top of the stack.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import signal
import sys
import threading

from mailer.delivery import recovery
from mailer.delivery.fanout import ARGS_END
from mailer.delivery.pipeline import prepare, send_share
from mailer.errors import MailerError
from mailer.storage import outage
from mailer.storage.db import Database, make_engine
from mailer.transports import get_transport

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

    transport = get_transport(settings)
    worker = recovery.new_worker_name()
    try:
        prepared = outage.ride_out(lambda: prepare(db, settings, campaign_id), settings,
                                   stop=stop, what="send helper")
        send_share(db, settings, prepared, transport=transport, worker=worker, stop=stop,
                   progress=report)
    except MailerError as exc:  # paused or cancelled meanwhile, cannot render: logged
        log.warning("send helper: %s", exc)
    except BrokenPipeError:  # the parent is gone; what we sent is recorded
        pass
    finally:
        recovery.forget_worker(worker)
        transport.close()
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
