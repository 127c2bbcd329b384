"""How fast one queue runner drains queued signup confirmations, at real API latency.

    .venv/bin/python bench/mail_queue.py [--emails 2000] [--latency-ms 250] [--database-url URL]

Queues ``--emails`` confirmation emails (one per pending subscriber, as signups queue them)
in a fresh database, then times ``mailer.delivery.mailqueue.run_mail_queue`` (what ``mailer
serve``, ``worker`` and ``run`` run) sending them all through the SendGrid stand-in
(tests/support, its own process) answering after ``--latency-ms``, MAILER_MAX_IN_FLIGHT (32)
requests in flight. Each figure on its own fresh database in the same run:

- ``one email per request``: the baseline, as the runner sent before alike emails shared a
  request (``mailrequests.PER_REQUEST`` set to 1: rounds of 32 single-email requests);
- ``alike, batched``: every person chose the same topics (one rendered message for all);
- ``20 topic choices, batched``: people chose one of 20 topic sets, so a round holds 20
  groups of alike emails.

Every email must be sent exactly once (the stand-in's count is checked).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _data import fresh_database  # noqa: E402
from sqlalchemy import func, insert, select, text  # noqa: E402

from mailer.delivery import mailrequests  # noqa: E402
from mailer.delivery.mailqueue import run_mail_queue  # noqa: E402
from mailer.delivery.outgoing import MailStatus, OutgoingMail  # noqa: E402
from mailer.settings import Settings  # noqa: E402
from mailer.storage.base import utcnow  # noqa: E402

API_KEY = "SG.bench-key"


def queue(db, count: int, choices: int) -> None:
    """``count`` pending subscribers, each with the confirmation a signup queues, having
    chosen one of ``choices`` topic sets."""
    now = utcnow()
    with db.engine.begin() as conn:
        for start in range(0, count, 1000):
            ids = range(start + 1, min(start + 1000, count) + 1)
            conn.execute(text(
                "INSERT INTO subscribers (id, email, email_key, frequency, status, "
                "consent_source, created_at, updated_at) VALUES (:id, :email, :id, "
                "'immediate', 'pending', 'bench', :now, :now)"),
                [{"id": i, "email": f"signup{i}@example.org", "now": now} for i in ids])
            conn.execute(insert(OutgoingMail.__table__), [
                {"subscriber_id": i, "template": "confirm_subscription",
                 "subject": "Please confirm your subscription", "email": f"signup{i}@example.org",
                 "name": None, "context": {"topics": ["Agriculture", f"Topic {i % choices}"],
                                             "expires_hours": 48},
                 "status": MailStatus.QUEUED, "attempts": 0, "next_attempt_at": now,
                 "created_at": now} for i in ids])


def drained_in(settings: Settings, count: int, choices: int) -> float:
    """Seconds one runner takes to send all ``count`` queued emails."""
    db = fresh_database(settings.database_url)
    queue(db, count, choices)
    stop = threading.Event()
    started = time.perf_counter()
    runner = threading.Thread(target=run_mail_queue, args=(db, settings, stop),
                              kwargs={"poll_interval": 0.05}, daemon=True)
    runner.start()
    table = OutgoingMail.__table__
    while True:
        with db.engine.connect() as conn:
            left = conn.scalar(select(func.count()).select_from(table)
                               .where(table.c.status != MailStatus.SENT))
        if not left:
            break
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    stop.set()
    runner.join(30)
    db.engine.dispose()
    return seconds


def accepted(standin_url: str) -> int:
    with urllib.request.urlopen(f"{standin_url}/_standin/stats", timeout=10) as answer:
        return int(json.load(answer)["accepted"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--latency-ms", type=int, default=250)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    standin = subprocess.Popen(
        [sys.executable, "-m", "tests.support.sendgrid_standin", "--api-key", API_KEY,
         "--record", "count", "--latency-ms", str(args.latency_ms), "--max-seconds", "3600"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    url = standin.stdout.readline().strip()
    load = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = Settings(database_url=args.database_url or f"sqlite:///{tmp}/now.db",
                            secret_key="bench", transport="sendgrid", sendgrid_api_key=API_KEY,
                            sendgrid_host=url, public_url="https://news.example.gov")
            rows = []
            per_request = mailrequests.PER_REQUEST
            for n, (label, single, choices) in enumerate((
                    ("one email per request", True, 1), ("alike, batched", False, 1),
                    ("20 topic choices, batched", False, 20))):
                mailrequests.PER_REQUEST = 1 if single else per_request
                settings = base.model_copy(update={
                    "database_url": args.database_url or f"sqlite:///{tmp}/run{n}.db"})
                before = accepted(url)
                seconds = drained_in(settings, args.emails, choices)
                sent = accepted(url) - before
                assert sent == args.emails, f"{label}: {sent} sent for {args.emails} queued"
                rows.append((label, seconds))
            mailrequests.PER_REQUEST = per_request
    finally:
        standin.terminate()
        standin.wait(10)
    print(f"\none queue runner, {args.emails:,} queued confirmations, provider latency "
          f"{args.latency_ms} ms, {base.database_url.split(':')[0]}, load average {load:.1f} "
          f"at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"{'runner':28} {'seconds':>8} {'emails/s':>9}")
    for label, seconds in rows:
        print(f"{label:28} {seconds:8.1f} {args.emails / seconds:9.0f}")


if __name__ == "__main__":
    main()
