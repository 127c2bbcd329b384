"""Delivery engine throughput and memory, next to a bare client and a naive sender.

    .venv/bin/python bench/send.py [--sizes 100000,1000000] [--latencies 0,250]
    .venv/bin/python bench/send.py --database postgresql [--postgres-url URL] [--million]

Sends from SQLite to the SendGrid stand-in (tests/support/sendgrid_standin.py, run as its own
process like the real API, counting what it accepts) and prints one table:

* engine: ``mailer.delivery.engine.send_campaign`` end to end: the segment query drawing the
  audience into ``deliveries``, personalization (two signed tokens per person), payloads,
  MAILER_CONCURRENCY (8) requests in flight in total at the start, growing up to
  MAILER_MAX_IN_FLIGHT (32) while the stand-in answers slowly but steadily, and every status
  row written before and after each request. With latency, "engine, fixed 8" is the same
  send with the window held at 8 (MAILER_MAX_IN_FLIGHT=8): the baseline for the adaptation.
  The seed press release is the content. MAILER_SEND_PROCESSES is left at its default (one
  process per core), so the send spreads over the machine's cores; "peak RSS" is the calling
  process's own (each helper process is about as large).
* bare client: the floor for this machine: threads posting equivalent 1000-recipient payloads
  (same per-recipient shape, pre-made tokens) with 8 in flight, no database at all (with
  latency, an engine whose window grew past 8 can beat it).
* naive: one request per recipient, sequentially, through the same SendGrid client; timed on
  a sample and extrapolated.

Each variant runs in its own process, so "peak RSS" is that process's own high-water mark
(from wait4). "CPU s" is the variant's process and the helper processes it started (user +
system, from wait4), "stand-in CPU s" the stand-in's meanwhile: both share the two cores,
so together they show how much of the machine a run used. The 1,000,000-recipient runs
take a few minutes on 2 cores; run them once.
Targets (issue 6): 1M in <= 30 s, >= half the bare client's rate, RSS <= 200 MB and flat
from 100k to 1M; with 250 ms stand-in latency, 1M in <= 40 s.

``--database postgresql`` runs the same engine, as deployed by default (``campaigns send``:
one process per core), from PostgreSQL and from SQLite side by side for 100k and 300k
recipients (``--million`` adds 1M): each size is set up once per backend in a fresh
database (PostgreSQL: created on the server of ``--postgres-url``, default
$MAILER_BENCH_POSTGRES_URL or postgres@127.0.0.1, copied from that template for the run and
dropped after). Printed per size: seconds and rate for each backend, the CPU of the
PostgreSQL backends serving the bench database (sampled from /proc during the send, so other
databases' work on the same server is not counted), the sender's own CPU, and the ratio of
each backend's 300k time to its 100k time. Targets (issue 18): 1M from PostgreSQL <= 40 s,
300k at most 3.3 times 100k.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.events import _stat_seconds, cpu_seconds  # noqa: E402  (one reader of /proc CPU)

API_KEY = "SG.bench-key"
CONCURRENCY = 8


# -- child processes -----------------------------------------------------------------------------
def _env(db: Path | str, host: str) -> dict[str, str]:
    """The children's environment for the SQLite file ``db`` (or the database URL ``db``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    url = db if isinstance(db, str) else f"sqlite:///{db}"
    env.update(MAILER_DATABASE_URL=url, MAILER_SECRET_KEY="bench-secret",
               MAILER_TRANSPORT="sendgrid", MAILER_SENDGRID_API_KEY=API_KEY,
               MAILER_SENDGRID_HOST=host, MAILER_CONCURRENCY=str(CONCURRENCY),
               MAILER_POSTAL_ADDRESS="123 Hart Senate Office Building, Washington, DC 20510",
               MAILER_PUBLIC_URL="https://news.senator.example.gov",
               MAILER_TEMPLATES_DIR=str(ROOT / "templates"), MAILER_LEASE_SECONDS="300")
    return env


def child_setup(count: int) -> None:
    """Subscribers and an approved campaign of the seed release (not timed)."""
    from mailer.campaigns.models import Campaign, CampaignStatus
    from mailer.ingest.models import Release
    from mailer.render.sample import seed_release
    from mailer.settings import get_settings
    from mailer.storage.base import utcnow
    from mailer.storage.db import open_database
    from tests.support.campaigns import AUDIENCE_QUERY, add_subscribers

    db = open_database(get_settings())
    add_subscribers(db, count)
    seed = seed_release()
    with db.session() as session:
        release = Release(title=seed.title, subtitle=seed.subtitle, date=seed.date,
                          dateline=seed.dateline, body=seed.body, contact=seed.contact,
                          link=seed.link, source="bench", content_hash="bench-seed")
        session.add(release)
        session.flush()
        session.add(Campaign(kind="release", release_id=release.id, query=AUDIENCE_QUERY,
                             template="press_release", subject=seed.title, created_by="a",
                             status=CampaignStatus.APPROVED, approved_by="b",
                             approved_at=utcnow()))


def child_engine() -> None:
    from mailer.delivery.engine import send_campaign
    from mailer.settings import get_settings
    from mailer.storage.db import open_database

    settings = get_settings()
    db = open_database(settings)
    started = time.perf_counter()
    summary = send_campaign(db, settings, 1)
    seconds = time.perf_counter() - started
    print(json.dumps({"recipients": summary.accepted, "seconds": seconds,
                      "status": summary.status}))


def child_bare(count: int, host: str) -> None:
    """Threads posting 1000-recipient payloads of the engine's shape; no database."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from sendgrid import SendGridAPIClient
    local = threading.local()
    unsub = "https://news.senator.example.gov/unsubscribe/12345.awLDug.LsCADU47m5MVdjqC5EpSV"

    def post(first: int) -> int:
        client = getattr(local, "client", None) or SendGridAPIClient(API_KEY, host=host)
        local.client = client
        personalizations = [{
            "to": [{"email": f"person{i}@example.org", "name": f"Person {i}"}],
            "custom_args": {"campaign_id": "1", "delivery_id": str(i)},
            "substitutions": {"-name_h-": f"Person {i}", "-name_t-": f"Person {i}",
                              "-email_h-": f"person{i}@example.org",
                              "-email_t-": f"person{i}@example.org",
                              "-unsub_h-": unsub, "-unsub_t-": unsub,
                              "-prefs_h-": unsub, "-prefs_t-": unsub},
            "headers": {"List-Unsubscribe": f"<{unsub}>",
                        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        } for i in range(first, min(first + 1000, count))]
        client.client.mail.send.post(request_body={
            "from": {"email": "news@senator.example.gov"}, "subject": "s",
            "content": [{"type": "text/plain", "value": "t"},
                        {"type": "text/html", "value": "<p>h</p>"}],
            "personalizations": personalizations}, timeout=30)
        return len(personalizations)

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        sent = sum(pool.map(post, range(0, count, 1000)))
    print(json.dumps({"recipients": sent, "seconds": time.perf_counter() - started}))


def child_naive(sample: int, host: str) -> None:
    """One request per recipient, one after another."""
    from mailer.transports.base import Batch, CompiledMessage, Recipient
    from mailer.transports.sendgrid import SendGridTransport

    transport = SendGridTransport(API_KEY, host, timeout=30)
    message = CompiledMessage(subject="s", html="<p>h</p>", text="t",
                              from_email="news@senator.example.gov", from_name="Office",
                              campaign_id=1)
    started = time.perf_counter()
    for i in range(sample):
        transport.send(Batch(message, [Recipient(email=f"person{i}@example.org",
                                                 delivery_id=i)]))
    print(json.dumps({"recipients": sample, "seconds": time.perf_counter() - started}))


# -- the parent --------------------------------------------------------------------------------
def run_child(args: list[str], env: dict[str, str] | None = None) -> tuple[dict, float]:
    """(the child's JSON line, its peak RSS in MB); the line gets ``cpu``: the CPU seconds
    of the child and the processes it waited for."""
    proc = subprocess.Popen([sys.executable, __file__, *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed ({proc.returncode})")
    line = out.strip().splitlines()[-1] if out.strip() else "{}"
    return json.loads(line) | {"cpu": usage.ru_utime + usage.ru_stime}, usage.ru_maxrss / 1024


class StandIn:
    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.sendgrid_standin", "--api-key", API_KEY,
             "--record", "count", "--max-seconds", "3600"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()

    def control(self, **data) -> dict:
        request = urllib.request.Request(f"{self.url}/_standin/faults",
                                         data=json.dumps(data).encode(), method="POST")
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    def run(self, args: list[str], env: dict[str, str] | None = None) -> tuple[dict, float]:
        """``run_child`` with ``standin_cpu``: this stand-in's CPU seconds meanwhile (it
        shares the machine's cores with the sender being measured)."""
        before = cpu_seconds(self.proc.pid)
        result, rss = run_child(args, env)
        return result | {"standin_cpu": cpu_seconds(self.proc.pid) - before}, rss

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--latencies", default="0,250")
    parser.add_argument("--naive-sample", type=int, default=500)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="postgresql: PostgreSQL beside SQLite at 100k and 300k")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "MAILER_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
        help="a server where the bench may create and drop databases")
    parser.add_argument("--million", action="store_true", help="also 1,000,000 recipients")
    args = parser.parse_args()
    if args.database == "postgresql":
        compare_backends(args.postgres_url, [100_000, 300_000] + [1_000_000] * args.million)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    latencies = [int(s) for s in args.latencies.split(",")]
    rows: list[tuple] = []
    load_at_start = os.getloadavg()  # other processes share the cores: say how busy they were
    standin = StandIn()
    work = Path(tempfile.mkdtemp(prefix="mailer-bench-"))
    try:
        for size in sizes:
            pristine = work / f"pristine-{size}.db"
            print(f"setting up {size:,} subscribers...", file=sys.stderr)
            run_child(["setup", str(size)], _env(pristine, standin.url))
            for latency in latencies:
                if latency and size != max(sizes):
                    continue  # the latency variant is specified for the largest size
                standin.control(latency_ms=latency)
                db_path = work / f"run-{size}-{latency}.db"
                shutil.copy(pristine, db_path)
                print(f"engine {size:,} (latency {latency} ms)...", file=sys.stderr)
                result, rss = standin.run(["engine"], _env(db_path, standin.url))
                rows.append(("engine", size, latency, result, rss))
                db_path.unlink()
                if latency:  # the baseline: a fixed window, as before it adapted
                    shutil.copy(pristine, db_path)
                    print(f"engine, fixed {CONCURRENCY} in flight {size:,} (latency {latency} "
                          "ms)...", file=sys.stderr)
                    fixed = {**_env(db_path, standin.url),
                             "MAILER_MAX_IN_FLIGHT": str(CONCURRENCY)}
                    result, rss = standin.run(["engine"], fixed)
                    rows.append((f"engine, fixed {CONCURRENCY}", size, latency, result, rss))
                    db_path.unlink()
                print(f"bare client {size:,} (latency {latency} ms)...", file=sys.stderr)
                result, rss = standin.run(["bare", str(size), standin.url])
                rows.append(("bare client", size, latency, result, rss))
            pristine.unlink()
        standin.control(latency_ms=0)
        result, rss = standin.run(["naive", str(args.naive_sample), standin.url])
        scale = max(sizes) / result["recipients"]
        rows.append(("naive (extrapolated)", max(sizes), 0, {
            "seconds": result["seconds"] * scale, "recipients": max(sizes),
            "cpu": None, "standin_cpu": None}, rss))  # CPU: mostly start-up, not extrapolated
    finally:
        standin.stop()
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows)
    print("load average (1, 5, 15 min) at start: {:.2f} {:.2f} {:.2f}; at end: "
          "{:.2f} {:.2f} {:.2f}".format(*load_at_start, *os.getloadavg()))


def print_table(rows: list[tuple]) -> None:
    """One line per run; ``rows``: (variant, size, latency ms, child's result, peak RSS)."""
    bare = {(r[1], r[2]): r[3]["recipients"] / r[3]["seconds"]
            for r in rows if r[0] == "bare client"}
    print(f"{'variant':<22}{'recipients':>12}{'latency':>9}{'seconds':>10}{'recipients/s':>14}"
          f"{'peak RSS MB':>13}{'vs bare':>9}{'CPU s':>8}{'stand-in CPU s':>16}")
    for name, size, latency, result, rss in rows:
        seconds, sent = result["seconds"], result["recipients"]
        rate = sent / seconds if seconds else 0
        share = f"{rate / bare[(size, latency)]:.0%}" if (size, latency) in bare else ""
        cpu = "" if result["cpu"] is None else f"{result['cpu']:.1f}"
        standin = "" if result["standin_cpu"] is None else f"{result['standin_cpu']:.1f}"
        print(f"{name:<22}{size:>12,}{latency:>7}ms{seconds:>10.1f}{rate:>14,.0f}"
              f"{rss:>13.0f}{share:>9}{cpu:>8}{standin:>16}")
    print("CPU s: the variant's process and the helper processes it started (user + system, "
          "its whole run);\nstand-in CPU s: the SendGrid stand-in's meanwhile, on the same "
          "cores.")


# -- PostgreSQL beside SQLite ------------------------------------------------------------------
class Postgres:
    """Creates (optionally from a template) and drops databases on the bench's server."""

    def __init__(self, url: str):
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        try:
            self.base = make_url(url).set(drivername="postgresql+psycopg")
            self.admin = create_engine(self.base, isolation_level="AUTOCOMMIT")
            self.admin.connect().close()
        except Exception as exc:  # noqa: BLE001  (any reason the server is unusable)
            raise SystemExit(f"bench: error: cannot use --postgres-url: {exc}") from None
        self.prefix = f"mailer_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    def create(self, name: str, template: str | None = None) -> str:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'
                              + (f' TEMPLATE "{template}"' if template else "")))
        return self.base.set(database=name).render_as_string(hide_password=False)

    def drop(self, name: str) -> None:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class BackendCpu:
    """CPU seconds of the PostgreSQL backends serving ``database``, sampled from /proc while
    a send runs: a backend's CPU is gone from /proc when its connection closes, so each one
    counts with its last reading (at most one interval of a backend is missed)."""

    def __init__(self, database: str, interval: float = 0.1):
        self.marker, self.interval = f" {database} ", interval
        self.seen: dict[int, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BackendCpu:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()

    @property
    def seconds(self) -> float:
        return sum(self.seen.values())

    def _run(self) -> None:
        while not self.done.wait(self.interval):
            for proc in Path("/proc").glob("[0-9]*"):
                try:
                    if self.marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                        self.seen[int(proc.name)] = _stat_seconds((proc / "stat").read_text())
                except OSError:
                    continue


def compare_backends(postgres_url: str, sizes: list[int]) -> None:
    """The engine from SQLite and from PostgreSQL at each size, in one run; one table."""
    server = Postgres(postgres_url)
    results: dict[tuple[str, int], dict] = {}
    load_at_start = os.getloadavg()
    standin = StandIn()
    work = Path(tempfile.mkdtemp(prefix="mailer-bench-"))
    try:
        for size in sizes:
            print(f"SQLite: {size:,} recipients...", file=sys.stderr)
            results["sqlite", size] = _sqlite_send(work, size, standin.url)
            print(f"PostgreSQL: {size:,} recipients...", file=sys.stderr)
            results["postgresql", size] = _postgres_send(server, size, standin.url)
    finally:
        standin.stop()
        shutil.rmtree(work, ignore_errors=True)
    print_backends(results, sizes)
    print("load average (1, 5, 15 min) at start: {:.2f} {:.2f} {:.2f}; at end: "
          "{:.2f} {:.2f} {:.2f}".format(*load_at_start, *os.getloadavg()))


def _sqlite_send(work: Path, size: int, host: str) -> dict:
    db_path = work / f"send-{size}.db"
    run_child(["setup", str(size)], _env(db_path, host))
    result, rss = run_child(["engine"], _env(db_path, host))
    db_path.unlink()
    return result | {"rss": rss}


def _postgres_send(server: Postgres, size: int, host: str) -> dict:
    """Set up a template database, send from a fresh copy of it, drop both."""
    template, name = f"{server.prefix}_{size}_setup", f"{server.prefix}_{size}"
    try:
        run_child(["setup", str(size)], _env(server.create(template), host))
        env = _env(server.create(name, template), host)
        with BackendCpu(name) as cpu:
            result, rss = run_child(["engine"], env)
        return result | {"rss": rss, "db_cpu": cpu.seconds}
    finally:
        server.drop(name)
        server.drop(template)


def print_backends(results: dict[tuple[str, int], dict], sizes: list[int]) -> None:
    print(f"{'recipients':>10}{'SQLite s':>10}{'SQLite/s':>10}{'PG s':>9}{'PG/s':>9}"
          f"{'PG server CPU s':>17}{'sender CPU s':>14}{'PG RSS MB':>11}")
    for size in sizes:
        lite, pg = results["sqlite", size], results["postgresql", size]
        for row in (lite, pg):
            if row.get("recipients") != size or row.get("status") != "sent":
                print(f"warning: {size:,}: {row}", file=sys.stderr)
        print(f"{size:>10,}{lite['seconds']:>10.1f}{size / lite['seconds']:>10,.0f}"
              f"{pg['seconds']:>9.1f}{size / pg['seconds']:>9,.0f}"
              f"{pg['db_cpu']:>8.1f} ({pg['db_cpu'] / pg['seconds']:>4.0%})"
              f"{pg['cpu']:>14.1f}{pg['rss']:>11.0f}")
    if 100_000 in sizes and 300_000 in sizes:
        ratio = {b: results[b, 300_000]["seconds"] / results[b, 100_000]["seconds"]
                 for b in ("sqlite", "postgresql")}
        print(f"300k / 100k time: SQLite {ratio['sqlite']:.2f}, PostgreSQL "
              f"{ratio['postgresql']:.2f} (target <= 3.3)")
    print("PG server CPU: the bench database's backends, as a share of one core's time")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in {"setup", "engine", "bare", "naive"}:
        command, rest = sys.argv[1], sys.argv[2:]
        {"setup": lambda: child_setup(int(rest[0])), "engine": child_engine,
         "bare": lambda: child_bare(int(rest[0]), rest[1]),
         "naive": lambda: child_naive(int(rest[0]), rest[1])}[command]()
    else:
        main()
