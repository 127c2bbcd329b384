"""Signups per second and p99 latency under concurrent clients (run through ``bench/web.py``).

    .venv/bin/python bench/web.py --only signups [--clients 16,64] [--seconds 10] [--workers 1]
    .venv/bin/python bench/web_signups.py profile [--requests 2000]   # where a signup's CPU goes

Each figure is one fresh SQLite database and one server process, loaded by N clients (each a
keep-alive connection in this process, asyncio on raw sockets so the load generator costs
little) posting the subscribe form with a new address for ``seconds`` after a 2 s warm-up;
every signup comes from its own forwarded address (the per-network limit is not the subject).
The server sends through the SendGrid stand-in (tests/support, its own process) answering
after ``latency_ms``:

- ``queued``: ``mailer serve [--workers N]`` as deployed: the signup queues its confirmation
  and the server's queue runner (one per web process) sends it (figures also show how many
  went out during the run);
- ``worker``: ``mailer serve [--workers N]`` with MAILER_WEB_SENDS_MAIL=false and ``mailer
  worker`` as its own process sending the queue;
- ``inline`` (baseline): the same app and uvicorn settings, but every signup sends its own
  confirmation inside its request before answering, as the request path did before the queue
  (always one process).

``--workers N`` (default 1) is ``serve``'s own option: N web processes sharing the port, the
documented way to use more than one core. The web CPU column then sums every process.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
API_KEY = "SG.bench-key"
WARM_UP = 2.0
CSRF = re.compile(rb'name="csrf_token" value="([^"]+)"')
COOKIE = re.compile(rb"set-cookie: (mailer_session=[^;]+)", re.IGNORECASE)


def compare(client_counts: list[int], seconds: float, latency_ms: int, workers: int = 1) -> None:
    standin = subprocess.Popen(
        [sys.executable, "-m", "tests.support.sendgrid_standin", "--api-key", API_KEY,
         "--record", "count", "--latency-ms", str(latency_ms), "--max-seconds", "3600"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    url = standin.stdout.readline().strip()
    rows = []
    try:
        for clients in client_counts:
            for mode in ("inline", "queued", "worker"):
                rows.append(_one_run(mode, clients, seconds, url, workers))
    finally:
        standin.terminate()
        standin.wait(10)
    load = os.getloadavg()
    print(f"\nPOST /subscribe, SQLite, provider latency {latency_ms} ms, {seconds:.0f} s per "
          f"figure, {os.cpu_count()} cores, {workers} web process(es) for serve, load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end")
    print(f"{'path':28} {'clients':>7} {'signups/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'web CPU ms/signup':>18} {'errors':>7} {'emails sent':>12} {'queued at end':>14}")
    for r in rows:
        print(f"{r['label']:28} {r['clients']:7d} {r['rps']:10.0f} {r['p50']:8.1f} "
              f"{r['p99']:8.1f} {r['cpu']:18.2f} {r['errors']:7d} {r['sent']:12d} "
              f"{r['queued']:14d}")
    print("web CPU: the web process's user+system time over the whole load (warm-up "
          "included) divided by the signups it answered; with `serve` it includes its queue "
          "runner's sends.")


def _one_run(mode: str, clients: int, seconds: float, standin_url: str,
             workers: int = 1) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port = _free_port()
        env = {**os.environ, "MAILER_DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
               "MAILER_SECRET_KEY": "bench", "MAILER_TRANSPORT": "sendgrid",
               "MAILER_SENDGRID_API_KEY": API_KEY, "MAILER_SENDGRID_HOST": standin_url,
               "MAILER_PUBLIC_URL": f"http://127.0.0.1:{port}",
               "MAILER_POSTAL_ADDRESS": "1 Bench Street, Fargo, ND 58102",
               "MAILER_JOURNAL_DIR": str(folder / "journal")}
        subprocess.run([sys.executable, __file__, "seed"], env=env, cwd=folder, check=True)
        command = ([sys.executable, __file__, "serve-inline", str(port)] if mode == "inline"
                   else [sys.executable, "-m", "mailer", "serve", "--port", str(port),
                         "--workers", str(workers)])
        if mode == "worker":
            env["MAILER_WEB_SENDS_MAIL"] = "false"
        with open(folder / "server.log", "wb") as log:
            server = subprocess.Popen(command, env=env, cwd=folder, stdout=log, stderr=log)
            worker = (subprocess.Popen([sys.executable, "-m", "mailer", "worker"], env=env,
                                       cwd=folder, stdout=log, stderr=log)
                      if mode == "worker" else None)
            try:
                _wait_for(port, server, folder / "server.log")
                cpu_before = _cpu_seconds(server.pid)
                latencies, errors, answered = asyncio.run(_load(port, clients, seconds))
                cpu = (_cpu_seconds(server.pid) - cpu_before) / max(1, answered)
                sent, queued = _mail_counts(folder / "bench.db")
            finally:
                for process in (server, worker):
                    if process is not None:
                        process.terminate()
                        process.wait(30)
    latencies.sort()
    label = {"inline": "inline (baseline)", "queued": "queued, serve sends",
             "worker": "queued, a worker sends"}[mode]
    return {"label": label, "clients": clients, "rps": len(latencies) / seconds,
            "cpu": cpu * 1000,
            "p50": statistics.median(latencies) * 1000 if latencies else 0.0,
            "p99": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000 if latencies else 0,
            "errors": errors, "sent": sent, "queued": queued}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the server did not start; its log ends:\n"
                             + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not start in time")


def _cpu_seconds(pid: int) -> float:
    """User + system seconds of ``pid`` and its live descendants (``--workers N``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return own + sum(_cpu_seconds(int(child)) for child in children)


def _mail_counts(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as conn:
        counts = dict(conn.execute("SELECT status, count(*) FROM outgoing_mail GROUP BY status"))
    return counts.get("sent", 0), counts.get("queued", 0) + counts.get("claimed", 0)


async def _load(port: int, clients: int, seconds: float) -> tuple[list[float], int, int]:
    """Latencies in the measured window, errors in it, and every signup answered."""
    start = time.perf_counter()
    measure_from, stop_at = start + WARM_UP, start + WARM_UP + seconds
    latencies: list[float] = []
    counts = [0, 0]  # errors in the window, answered in all
    await asyncio.gather(*(_client(port, i, measure_from, stop_at, latencies, counts)
                           for i in range(clients)))
    return latencies, counts[0], counts[1]


async def _client(port: int, index: int, measure_from: float, stop_at: float,
                  latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    base = f"Host: 127.0.0.1:{port}\r\n"
    _, head, body = await _exchange(reader, writer, f"GET /subscribe HTTP/1.1\r\n{base}\r\n")
    cookie = COOKIE.search(head).group(1).decode()
    token = CSRF.search(body).group(1).decode()
    n = 0
    while (now := time.perf_counter()) < stop_at:
        n += 1
        form = urlencode({"csrf_token": token, "email": f"c{index}-{n}@example.org",
                          "name": "Pat Sample", "zip": "58102", "frequency": "immediate",
                          "topics": ["topic-1", "topic-3"]}, doseq=True)
        request = (f"POST /subscribe HTTP/1.1\r\n{base}Cookie: {cookie}\r\n"
                   f"X-Forwarded-For: 10.{index}.{n // 250 % 250}.{n % 250 + 1}\r\n"
                   "Content-Type: application/x-www-form-urlencoded\r\n"
                   f"Content-Length: {len(form)}\r\n\r\n{form}")
        status, _, _ = await _exchange(reader, writer, request)
        errors[1] += 1
        if now >= measure_from and time.perf_counter() <= stop_at:
            latencies.append(time.perf_counter() - now)
            errors[0] += status != 200
    writer.close()


async def _exchange(reader, writer, request: str) -> tuple[int, bytes, bytes]:
    writer.write(request.encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))
    body = await reader.readexactly(length)
    return int(head.split(b" ", 2)[1]), head, body


# --- children ---------------------------------------------------------------------------

def seed() -> None:
    """The database the server starts on: 8 topics and 1,000 subscribers."""
    from mailer.settings import get_settings
    from mailer.storage.db import open_database
    from subscribers.models import Subscriber, Topic

    db = open_database(get_settings())
    with db.session() as session:
        session.add_all(Topic(slug=f"topic-{i}", name=f"Topic {i}") for i in range(8))
        session.add_all(Subscriber(email=f"p{i}@example.org", status="active")
                        for i in range(1000))


def serve_inline(port: int) -> None:
    """The baseline server: ``mailer serve``'s app and uvicorn settings, no queue runner, and
    each signup's confirmation sent inside its request (claimed from the queue it was just
    written to, so the database work is the queued path's plus one hand-off)."""
    from starlette.concurrency import run_in_threadpool

    from mailer.cli import context
    from mailer.cli.web import _serve_web
    from mailer.delivery import mailqueue, recovery
    from mailer.delivery.mailrequests import send_group
    from mailer.transports import get_transport
    from mailer.web.app import create_app

    context.service_logging()
    settings, db = context.settings(), context.database()
    app = create_app(settings.model_copy(update={"web_sends_mail": False}), db)
    transport, signer = get_transport(settings), mailqueue.make_signer(db, settings)
    worker = recovery.new_worker_name()

    def send_one() -> None:
        claimed = mailqueue.claim(db, worker, 1, settings.lease_seconds)
        ours = mailqueue.mark_sending(db, claimed, worker)
        if ours:
            mailqueue.settle(db, worker, send_group(settings, signer, transport, ours))

    @app.middleware("http")
    async def inline(request, call_next):
        response = await call_next(request)
        if request.method == "POST" and request.url.path == "/subscribe":
            await run_in_threadpool(send_one)
        return response

    _serve_web("127.0.0.1", port, settings, db, 1, web_app=app)


def profile(requests: int) -> None:
    """cProfile of ``POST /subscribe`` in process (the ASGI app called on this thread's event
    loop, no server, no provider): the CPU per signup and the functions that cost it."""
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update({"MAILER_DATABASE_URL": f"sqlite:///{Path(tmp) / 'p.db'}",
                           "MAILER_SECRET_KEY": "bench", "MAILER_WEB_SENDS_MAIL": "false",
                           "MAILER_PUBLIC_URL": "http://testserver"})
        seed()
        from mailer.storage.limits import SharedLimit
        from mailer.web.app import create_app

        app = create_app()
        # One client address here: the per-network limit is not what is being profiled (it
        # is still counted in the database, as every signup's is).
        app.state.subscribe_limiter = SharedLimit(app.state.db, "subscribe", limit=10**9,
                                                  window=600)
        profiler = cProfile.Profile()
        cpu = asyncio.run(_profiled(app, httpx, profiler, requests))
    print(f"CPU per signup (in process, ASGI, profiler off): {cpu * 1000:.2f} ms")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(
        "mailer|subscribers|starlette|jinja", 40)


async def _profiled(app, httpx, profiler, requests: int) -> float:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        token = CSRF.search((await client.get("/subscribe")).content).group(1).decode()

        async def post(i: int) -> None:
            response = await client.post("/subscribe", data={
                "csrf_token": token, "email": f"x{i}@example.org", "name": "Pat",
                "zip": "58102", "topics": ["topic-1", "topic-3"]})
            assert response.status_code == 200, response.status_code

        for i in range(200):
            await post(i)
        started = time.process_time()
        for i in range(200, 200 + requests):
            await post(i)
        cpu = (time.process_time() - started) / requests
        profiler.enable()
        for i in range(200 + requests, 200 + 2 * requests):
            await post(i)
        profiler.disable()
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("seed", "serve-inline", "profile"))
    parser.add_argument("port", nargs="?", type=int)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    if args.what == "seed":
        seed()
    elif args.what == "serve-inline":
        serve_inline(args.port)
    else:
        profile(args.requests)


if __name__ == "__main__":
    main()
