"""How fast one queue runner drains queued signup confirmations, at real API latency.

    .venv/bin/python bench/mail_queue.py [--emails 2000] [--latency-ms 250] [--database-url URL]

Queues ``--emails`` confirmation emails (one per pending subscriber, as signups queue them)
in a fresh database, then times ``mailer.delivery.mailqueue.run_mail_queue`` (what ``mailer
serve``, ``worker`` and ``run`` run) sending them all through the SendGrid stand-in
(tests/support, its own process) answering after ``--latency-ms``. Two figures, each on its
own fresh database in the same run:

- ``rounds of 32`` (MAILER_MAX_IN_FLIGHT, the default): emails handed off at once now;
- ``rounds of 8`` (MAILER_CONCURRENCY; the baseline): as the runner did before.

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

from mailer.delivery.mailqueue import round_size, run_mail_queue  # noqa: E402
from mailer.delivery.outgoing import MailStatus, OutgoingMail  # noqa: E402
from mailer.settings import Settings  # noqa: E402
from mailer.storage.base import utcnow  # noqa: E402

API_KEY = "SG.bench-key"


def queue(db, count: int) -> None:
    """``count`` pending subscribers, each with the confirmation a signup queues."""
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
                 "name": None, "context": {"topics": ["Agriculture"], "expires_hours": 48},
                 "status": MailStatus.QUEUED, "attempts": 0, "next_attempt_at": now,
                 "created_at": now} for i in ids])


def drained_in(settings: Settings, count: int) -> float:
    """Seconds one runner takes to send all ``count`` queued emails."""
    db = fresh_database(settings.database_url)
    queue(db, count)
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
            for label, settings in (
                    ("rounds of 32 (now)", base),
                    ("rounds of 8 (baseline)", base.model_copy(update={
                        "max_in_flight": base.concurrency,
                        "database_url": args.database_url or f"sqlite:///{tmp}/before.db"}))):
                before = accepted(url)
                seconds = drained_in(settings, args.emails)
                sent = accepted(url) - before
                assert sent == args.emails, f"{label}: {sent} sent for {args.emails} queued"
                rows.append((label, round_size(settings), seconds))
    finally:
        standin.terminate()
        standin.wait(10)
    print(f"\none queue runner, {args.emails:,} queued confirmations, provider latency "
          f"{args.latency_ms} ms, {base.database_url.split(':')[0]}, load average {load:.1f} "
          f"at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"{'runner':24} {'in flight':>9} {'seconds':>8} {'emails/s':>9}")
    for label, size, seconds in rows:
        print(f"{label:24} {size:9d} {seconds:8.1f} {args.emails / seconds:9.0f}")


if __name__ == "__main__":
    main()
