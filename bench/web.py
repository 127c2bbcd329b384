"""Web latency and throughput through a real uvicorn server, next to a baseline in the same run.

    .venv/bin/python bench/web.py [--requests 1000] [--only endpoints|signups]
        [--clients 16,64] [--seconds 10] [--latency-ms 250]

Endpoints, sequential:

Serves ``create_app`` on a temporary SQLite file (one process, as ``mailer serve`` runs) and
times, one client with keep-alive, sequential requests:

- ``GET /subscribe``            (session cookie, CSRF token, topics from the database, template)
- ``POST /unsubscribe/{token}`` (RFC 8058 one-click: token check, status change, suppression)
- ``GET /api/campaigns``        (bearer token hashed and looked up, JSON)
- baseline: a bare Starlette route answering "ok" on the same uvicorn settings

and prints requests/s with p50/p99 latency, side by side.

Signups, concurrent (``bench/web_signups.py``): ``POST /subscribe`` from 16 and 64 clients
for ``--seconds`` each against ``mailer serve`` as its own process on SQLite, sending through
the SendGrid stand-in answering after ``--latency-ms``; the confirmation is queued and sent
by the server's queue runner. Baseline in the same run: the same server sending each
confirmation inside its request (the path before the queue).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import web_signups  # noqa: E402 - beside this file


def _serve(app) -> tuple[str, uvicorn.Server, threading.Thread]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}", server, thread


def _time(label: str, count: int, call) -> dict:
    for _ in range(min(50, count)):  # warm up
        call(0)
    latencies = []
    started = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        call(i)
        latencies.append(time.perf_counter() - t0)
    total = time.perf_counter() - started
    latencies.sort()
    return {"label": label, "rps": count / total,
            "p50": statistics.median(latencies) * 1000,
            "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000}


def _setup(folder: Path):
    os.environ.update({
        "MAILER_DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
        "MAILER_OUTBOX_DIR": str(folder / "outbox"), "MAILER_SECRET_KEY": "bench",
        "MAILER_PUBLIC_URL": "http://127.0.0.1",
    })
    from mailer.settings import get_settings
    from mailer.storage.db import open_database
    from mailer.web.app import create_app
    from mailer.web.auth import create_api_token
    from subscribers.models import Subscriber, Topic

    settings = get_settings()
    db = open_database(settings)
    with db.session() as session:
        session.add_all(Topic(slug=f"topic-{i}", name=f"Topic {i}") for i in range(8))
        session.add_all(Subscriber(email=f"p{i}@example.org", status="active")
                        for i in range(5000))
        token = create_api_token(session, "bench")
    return create_app(settings, db), token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--only", choices=("endpoints", "signups"))
    parser.add_argument("--clients", default="16,64")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--latency-ms", type=int, default=250)
    parser.add_argument("--workers", type=int, default=1,
                        help="web processes of `mailer serve` for the signup figures")
    args = parser.parse_args()
    if args.only != "signups":
        endpoints(args.requests)
    if args.only != "endpoints":
        web_signups.compare([int(c) for c in args.clients.split(",")], args.seconds,
                            args.latency_ms, args.workers)


def endpoints(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app, token = _setup(Path(tmp))
        signer = app.state.signer
        base, server, thread = _serve(app)
        rows = []
        with httpx.Client(base_url=base) as client:
            rows.append(_time("GET /subscribe", n, lambda i: client.get("/subscribe")))
            rows.append(_time("POST one-click unsubscribe", n, lambda i: client.post(
                f"/unsubscribe/{signer.make(i % 5000 + 1, 'unsubscribe')}",
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"})))
            rows.append(_time("GET /api/campaigns (bearer)", n, lambda i: client.get(
                "/api/campaigns", headers={"Authorization": f"Bearer {token}"})))
        server.should_exit = True
        thread.join()

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    bare = Starlette(routes=[Route("/", lambda request: PlainTextResponse("ok"))])
    base, server, thread = _serve(bare)
    with httpx.Client(base_url=base) as client:
        rows.append(_time("baseline: bare Starlette 'ok'", n, lambda i: client.get("/")))
    server.should_exit = True
    thread.join()

    print(f"{'endpoint':34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}   ({n} sequential requests)")
    for row in rows:
        print(f"{row['label']:34} {row['rps']:8.0f} {row['p50']:8.2f} {row['p99']:8.2f}")


if __name__ == "__main__":
    main()
