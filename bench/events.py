"""Event Webhook ingestion throughput, signature checks included, next to a bare insert.

    .venv/bin/python bench/events.py [--deliveries 10000] [--batch 1000] [--clients 2]
                                     [--processed-moves 50]
                                     [--postgres postgresql+psycopg://postgres@127.0.0.1/postgres]

What is timed, on the same SendGrid-shaped events (per delivery: processed, delivered, open;
one in 200 deliveries hard-bounces instead of being delivered; ``--processed-moves`` of the
``processed`` events move their row's ``sent_at``, see ``seed``):

* webhook: the real app (``mailer.web.app.create_app``) served by uvicorn in its own process
  on 127.0.0.1; each batch of ``--batch`` events is one signed POST (ECDSA P-256 over
  timestamp + body, as SendGrid signs), posted by ``--clients`` keep-alive HTTP clients.
  The server verifies the signature and age, parses, stores idempotently, matches each event
  to its delivery, advances delivery status and suppresses the bounced subscribers.
* replay: the first batches posted again (every event a duplicate: nothing may change).
* bare insert: the same event rows inserted with SQLAlchemy Core ``executemany`` into an
  empty ``delivery_events`` table, one transaction per batch; no HTTP, signature, JSON,
  matching or status updates. This is the floor the webhook path is compared to.

Reported: events/s by wall clock (what SendGrid sees), the server process's CPU seconds
(from /proc, so other load on the machine shows up as wall time, not as CPU), and on a local
PostgreSQL its server processes' CPU and the posting clients' own.
The target is >= 20,000 events/s through the webhook in batches of 1,000.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from mailer.campaigns.models import Campaign  # noqa: E402
from mailer.delivery.records import Delivery  # noqa: E402
from mailer.ingest.models import Release  # noqa: E402
from mailer.storage.base import utcnow  # noqa: E402
from mailer.storage.db import make_engine, upgrade  # noqa: E402
from mailer.tracking.events import from_sendgrid  # noqa: E402
from mailer.tracking.models import DeliveryEventRow  # noqa: E402
from mailer.tracking.webhook import PATH, SIGNATURE_HEADER, TIMESTAMP_HEADER  # noqa: E402
from subscribers.models import Subscriber  # noqa: E402

T0 = 1763650000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--processed-moves", type=int, default=50, metavar="PERCENT",
                        help="share of deliveries a processed event moves (see seed)")
    parser.add_argument("--postgres", help="server URL; a scratch database is made and dropped")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # internal: run the server
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve))
        return
    with tempfile.TemporaryDirectory() as tmp, scratch_databases(args.postgres, tmp) as urls:
        run(args, urls)


class scratch_databases:
    """Two empty, migrated databases (webhook run, bare-insert run); dropped afterwards."""

    def __init__(self, postgres: str | None, tmp: str):
        self.postgres, self.tmp, self.names = postgres, tmp, []

    def __enter__(self) -> list[str]:
        urls = []
        for label in ("webhook", "bare"):
            if self.postgres:
                name = f"mailer_bench_{label}_{uuid.uuid4().hex[:8]}"
                with self._admin().connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                self.names.append(name)
                url = make_url(self.postgres).set(database=name)
                urls.append(url.render_as_string(hide_password=False))
            else:
                urls.append(f"sqlite:///{Path(self.tmp) / f'{label}.db'}")
        for url in urls:
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
        return urls

    def __exit__(self, *exc) -> None:
        if self.names:
            with self._admin().connect() as conn:
                for name in self.names:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def _admin(self):
        url = make_url(self.postgres).set(database="postgres")
        return create_engine(url, isolation_level="AUTOCOMMIT")


def seed(url: str, deliveries: int, processed_moves: int
         ) -> tuple[int, list[tuple[int, str]]]:
    """A sending campaign with ``deliveries`` accepted rows; returns (campaign id, rows).

    ``sent_at`` is our own hand-off time, to the microsecond; SendGrid stamps ``processed``
    in whole seconds. For ``processed_moves`` percent of the rows the hand-off is recorded
    within the second SendGrid then stamps (so its truncated time is earlier and the
    ``processed`` event moves ``sent_at`` back, an update); for the rest it is recorded a
    second or more before (``processed`` proves nothing new). 100 is the worst case: every
    ``processed`` rewrites its row."""
    engine = make_engine(url)
    with engine.begin() as conn:
        release_id = conn.execute(insert(Release).values(
            title="Bench release", body="Body", source="bench", content_hash="0" * 64)
            .returning(Release.id)).scalar_one()
        campaign_id = conn.execute(insert(Campaign).values(
            release_id=release_id, subject="Bench", status="sending", query="x")
            .returning(Campaign.id)).scalar_one()
        conn.execute(insert(Subscriber), [
            {"email": f"p{i}@example{i % 50}.org", "status": "active", "county": "Cass"}
            for i in range(deliveries)])
        subs = conn.execute(select(Subscriber.id, Subscriber.email).order_by(Subscriber.id))
        conn.execute(insert(Delivery), [
            {"campaign_id": campaign_id, "subscriber_id": sid, "email": email,
             "status": "accepted", "provider_message_id": f"MSG{sid // 1000}",
             "sent_at": handed_off(index, processed_moves), "attempts": 1}
            for index, (sid, email) in enumerate(subs)])
        rows = conn.execute(select(Delivery.id, Delivery.email).order_by(Delivery.id)).all()
    engine.dispose()
    return campaign_id, [(r.id, r.email) for r in rows]


def processed_at(index: int) -> int:
    """SendGrid's ``processed`` stamp (whole seconds) for the delivery at ``index``."""
    return T0 + index % 60


def handed_off(index: int, processed_moves: int) -> datetime:
    """Our recorded hand-off time for the delivery at ``index`` (see ``seed``)."""
    moves = index % 100 < processed_moves
    return datetime.fromtimestamp(processed_at(index) + (0.4 if moves else -2.6), UTC)


def make_events(campaign_id: int, rows: list[tuple[int, str]]) -> list[dict]:
    events = []
    for step, name in enumerate(("processed", "delivered", "open")):
        for index, (delivery_id, email) in enumerate(rows):
            event = {"email": email, "event": name,
                     "timestamp": processed_at(index) + step * 60,
                     "sg_event_id": f"{name}-{delivery_id}-{uuid.uuid4().hex[:10]}",
                     "sg_message_id": f"MSG{delivery_id // 1000}.filterdrecv-5F5FC76C-9.0",
                     "smtp-id": f"<{delivery_id}@ismtpd0039p1iad1.sendgrid.net>",
                     "category": ["press-release"], "delivery_id": str(delivery_id),
                     "campaign_id": str(campaign_id)}
            if index % 200 == 7 and name != "processed":
                if name == "open":
                    continue
                event.update(event="bounce", type="bounce", reason="550 5.1.1 unknown user",
                             status="5.1.1")
            if name == "open":
                event["useragent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
                event["ip"] = "203.0.113.7"
            events.append(event)
    return events


def serve(port: int) -> None:
    import uvicorn

    from mailer.web.app import create_app

    uvicorn.run(create_app(), host="127.0.0.1", port=port, log_level="warning",
                access_log=False)


def start_server(url: str, public_key: str) -> tuple[subprocess.Popen, int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update(MAILER_DATABASE_URL=url, MAILER_SENDGRID_WEBHOOK_PUBLIC_KEY=public_key,
               MAILER_WEBHOOK_MAX_AGE="900", MAILER_SECRET_KEY="bench",
               MAILER_POSTAL_ADDRESS="1 Bench St")
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], env=env,
                               cwd=tempfile.gettempdir())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start")


def _stat_seconds(stat_text: str) -> float:
    """User + system CPU seconds from the text of a /proc/<pid>/stat file."""
    fields = stat_text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    return _stat_seconds(Path(f"/proc/{pid}/stat").read_text())


def database_cpu_seconds() -> float:
    """CPU of every PostgreSQL server process on this machine (backends, WAL writer,
    checkpointer, autovacuum), from /proc; 0 when none is visible (SQLite, or a remote
    server). Processes that ended between two readings are missed, so this is a floor."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if text.split(" (", 1)[1].startswith("postgres)"):
            total += _stat_seconds(text)
    return total


def sign(private_key, body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    signature = private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SIGNATURE_HEADER: base64.b64encode(signature).decode(),
            TIMESTAMP_HEADER: timestamp, "Content-Type": "application/json"}


def post_all(port: int, posts: list[tuple[bytes, dict]], clients: int) -> tuple[float, list]:
    """Post every body with ``clients`` keep-alive connections; returns (seconds, statuses)."""
    statuses: list[int] = []
    lock = threading.Lock()
    queue = list(reversed(posts))

    def worker():
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    body, headers = queue.pop()
                status = client.post(PATH, content=body, headers=headers).status_code
                with lock:
                    statuses.append(status)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, statuses


def bare_insert(url: str, events: list[dict], batch: int) -> tuple[float, float]:
    """The floor: the same rows, plain executemany, one transaction per batch."""
    engine = make_engine(url)
    received = utcnow()
    rows = []
    for raw in events:
        event = from_sendgrid(raw)
        rows.append({"provider_event_id": event.event_id, "delivery_id": None,
                     "campaign_id": None, "subscriber_id": None,
                     "provider_message_id": event.provider_message_id, "email": event.email,
                     "type": event.type, "reason": event.reason,
                     "occurred_at": event.occurred_at, "received_at": received, "raw": raw})
    stmt = insert(DeliveryEventRow.__table__)
    cpu, start = time.process_time(), time.perf_counter()
    for offset in range(0, len(rows), batch):
        with engine.begin() as conn:
            conn.execute(stmt, rows[offset:offset + batch])
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    engine.dispose()
    return elapsed, cpu


def run(args, urls: list[str]) -> None:
    webhook_url, bare_url = urls
    campaign_id, rows = seed(webhook_url, args.deliveries, args.processed_moves)
    events = make_events(campaign_id, rows)
    private_key = ec.generate_private_key(ec.SECP256R1())
    public_key = base64.b64encode(private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    # Compact, keys sorted, CRLF at the end: the shape of SendGrid's own signed test body.
    bodies = [json.dumps(events[i:i + args.batch], sort_keys=True, separators=(",", ":"))
              .encode() + b"\r\n" for i in range(0, len(events), args.batch)]
    process, port = start_server(webhook_url, public_key)
    try:
        posts = [(body, sign(private_key, body)) for body in bodies]
        cpu0, db0 = cpu_seconds(process.pid), database_cpu_seconds()
        client0 = time.process_time()
        elapsed, statuses = post_all(port, posts, args.clients)
        client_cpu = time.process_time() - client0
        server_cpu = cpu_seconds(process.pid) - cpu0
        database_cpu = database_cpu_seconds() - db0
        replay = posts[:max(1, len(posts) // 5)]
        cpu1 = cpu_seconds(process.pid)
        replay_elapsed, replay_statuses = post_all(port, replay, args.clients)
        replay_cpu = cpu_seconds(process.pid) - cpu1
    finally:
        process.terminate()
        process.wait(timeout=30)
    check(webhook_url, len(events), statuses + replay_statuses)
    bare_elapsed, bare_cpu = bare_insert(bare_url, events, args.batch)
    replayed = sum(len(json.loads(body)) for body, _ in replay)
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"{len(events):,} events in {len(bodies)} batches of {args.batch}, {backend}, "
          f"{args.clients} client(s), {os.cpu_count()} CPUs (shared); processed events "
          f"move {args.processed_moves} % of deliveries")
    print(f"{'path':<42}{'events/s':>10}{'wall s':>8}{'CPU s':>8}{'CPU µs/ev':>11}"
          f"{'ev/CPU-s':>10}")
    line = "{:<42}{:>10,.0f}{:>8.2f}{:>8.2f}{:>11.1f}{:>10,.0f}"
    for name, count, wall, cpu in (
            ("webhook: HTTP + signature + ingest", len(events), elapsed, server_cpu),
            ("replay (all duplicates)", replayed, replay_elapsed, replay_cpu),
            ("bare insert (baseline, no HTTP/matching)", len(events), bare_elapsed, bare_cpu)):
        print(line.format(name, count / wall, wall, cpu, cpu / count * 1e6, count / cpu))
    print(f"the posting clients (this process): {client_cpu:.2f} CPU s, "
          f"{client_cpu / len(events) * 1e6:.1f} µs per event")
    if database_cpu:
        print(f"PostgreSQL's own processes during the webhook run: {database_cpu:.2f} CPU s, "
              f"{database_cpu / len(events) * 1e6:.1f} µs per event")
    print("events/s is wall clock as SendGrid sees it; ev/CPU-s is what one core sustains "
          "(CPU of the server process only), which other load on a shared machine cannot hide.")
    verdict = "meets" if len(events) / elapsed >= 20_000 else "MISSES"
    print(f"target 20,000 events/s through the webhook: {verdict}")


def check(url: str, expected: int, statuses: list[int]) -> None:
    """The run only counts if every post was accepted and every event stored once."""
    bad = [s for s in statuses if s != 204]
    engine = make_engine(url)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(DeliveryEventRow)).scalar_one()
        matched = conn.execute(select(func.count()).select_from(DeliveryEventRow)
                               .where(DeliveryEventRow.delivery_id.is_not(None))).scalar_one()
        by_status = dict(conn.execute(select(Delivery.status, func.count())
                                      .group_by(Delivery.status)).all())
        bounced = conn.execute(select(func.count()).select_from(Subscriber)
                               .where(Subscriber.status == "bounced")).scalar_one()
    engine.dispose()
    print(f"check: {len(statuses)} posts, non-204: {len(bad)}; stored {stored:,} of "
          f"{expected:,} (matched {matched:,}); deliveries {by_status}; "
          f"subscribers bounced {bounced}")
    if bad or stored != expected or matched != expected:
        raise SystemExit("benchmark run invalid: see the check line")


if __name__ == "__main__":
    main()
