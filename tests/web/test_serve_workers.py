"""``mailer serve --workers 2`` and ``mailer run --workers 2`` as real processes, on a file
SQLite database and on PostgreSQL: two worker processes answer, and the signup limit is
counted once across them.

Which worker answers a request is up to the kernel; to make requests land on a chosen worker
the test stops the other one (SIGSTOP: it accepts nothing until SIGCONT), so every request of
a phase is answered by the one worker left running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from mailer.campaigns.models import Campaign
from mailer.storage.base import utcnow
from subscribers.models import Subscriber
from tests.web.conftest import add_subscriber, csrf_from
from tests.web.test_serve import _free_port, _stop

pytestmark = pytest.mark.slow


def _start(command: str, port: int, workers: int, log: Path, *, secret: bool = True,
           **env) -> subprocess.Popen:
    """The command in the background, its output in ``log`` (a pipe nobody reads could fill
    up and stall the server). ``secret=False``: no MAILER_SECRET_KEY, so the installation
    makes its own and keeps it in the database."""
    environment = {**os.environ, "MAILER_PUBLIC_URL": f"http://127.0.0.1:{port}", **env}
    if not secret:
        environment.pop("MAILER_SECRET_KEY", None)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "mailer", command, "--port", str(port),
             "--workers", str(workers)],
            env=environment, stdout=out, stderr=subprocess.STDOUT)


def _wait_healthy(process: subprocess.Popen, port: int, log: Path, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"the server did not answer /healthz:\n{log.read_text()}")


def _workers(parent: int, count: int, timeout: float = 90) -> list[int]:
    """The pids of the parent's uvicorn worker processes, once there are ``count``."""
    deadline = time.monotonic() + timeout
    found: list[int] = []
    while time.monotonic() < deadline:
        found = [pid for pid in _children(parent)
                 if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        if len(found) == count:
            return sorted(found)
        time.sleep(0.2)
    raise AssertionError(f"expected {count} worker processes, found {found}")


def _children(parent: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                # Field 4 of /proc/PID/stat is the parent pid (after the parenthesised name).
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                    pids.append(int(entry.name))
    return pids


@contextlib.contextmanager
def _only(running: int, stopped: int) -> Iterator[None]:
    """Requests inside land on ``running``: ``stopped`` accepts nothing until the block ends."""
    os.kill(stopped, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(stopped, signal.SIGCONT)


def _browser(port: int) -> httpx.Client:
    # A new connection for every request (no keep-alive), so none sticks to one worker.
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                        headers={"Connection": "close"},
                        limits=httpx.Limits(max_keepalive_connections=0))


def _form(client: httpx.Client) -> str:
    page = client.get("/subscribe")
    assert page.status_code == 200, page.text
    return csrf_from(page.text)


def _post(client: httpx.Client, token: str, email: str) -> int:
    return client.post("/subscribe", data={"csrf_token": token, "email": email,
                                           "frequency": "immediate"}).status_code


def _signup(port: int, email: str) -> int:
    with _browser(port) as client:
        return _post(client, _form(client), email)


def test_serve_with_two_workers_counts_the_signup_limit_once(settings, db, topics, tmp_path):
    port, log = _free_port(), tmp_path / "serve.log"
    # No signup email is sent in the background here: a worker stopped in the middle of its
    # mail runner's SQLite write would hold the file's lock, and the worker left running
    # would rightly answer 503 (a test artefact; a real process is not frozen mid-commit).
    process = _start("serve", port, 2, log, secret=False, MAILER_WEB_SENDS_MAIL="false")
    try:
        assert _wait_healthy(process, port, log) == {"status": "ok"}
        first, second = _workers(process.pid, 2)
        assert first != second
        # A form from one worker is accepted by the other: they sign sessions with one key.
        with _browser(port) as browser:
            with _only(running=first, stopped=second):
                token = _form(browser)
            with _only(running=second, stopped=first):
                assert _post(browser, token, "a0@example.org") == 200
                assert [_signup(port, f"a{i}@example.org") for i in (1, 2)] == [200] * 2
        with _only(running=first, stopped=second):
            # Counted apart, this worker would allow five of its own.
            assert [_signup(port, f"b{i}@example.org") for i in range(3)] == [200, 200, 429]
        with _only(running=second, stopped=first):
            assert _signup(port, "c@example.org") == 429
        assert _workers(process.pid, 2) == [first, second]  # neither was replaced meanwhile
    finally:
        code = _stop(process)
    assert code == 0, log.read_text()
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 5


def test_run_with_two_workers_serves_and_sends_a_due_campaign(settings, db, topics,
                                                              release_id, tmp_path):
    add_subscriber(db, "reader@example.org", topics=["agriculture"])
    with db.session() as session:
        campaign = Campaign(release_id=release_id, query='topic = "agriculture"',
                            subject="Due now", status="scheduled", scheduled_at=utcnow(),
                            created_by="alice", approved_by="bob", approved_at=utcnow())
        session.add(campaign)
        session.flush()
        campaign_id = campaign.id
    port, log = _free_port(), tmp_path / "run.log"
    process = _start("run", port, 2, log, MAILER_SCHEDULER_TICK="0.5",
                     MAILER_LEADER_LEASE_SECONDS="3")
    try:
        _wait_healthy(process, port, log)
        first, second = _workers(process.pid, 2)
        for running, stopped in ((first, second), (second, first)):
            with _only(running=running, stopped=stopped):
                assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=60).json() == {
                    "status": "ok"}
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and status != "sent":
            with db.session() as session:
                status = session.get(Campaign, campaign_id).status
            time.sleep(0.2)
    finally:
        code = _stop(process)
    assert status == "sent", log.read_text()
    assert code == 0, log.read_text()


def test_workers_below_one_is_a_usage_error(cli):
    result = cli("serve", "--workers", "0")
    assert result.exit_code == 2 and "--workers" in result.stderr
