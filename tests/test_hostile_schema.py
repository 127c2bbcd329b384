"""schemathesis against the API's own OpenAPI document, authenticated, with a fixed seed and
a bounded number of examples: no operation may answer 5xx, whatever the generated input
(integers past 64 bits, NUL in text, odd dates, huge and empty bodies).

It checks server errors only, through a real ``mailer serve`` (uvicorn, its own process).
That the document matches every answer (status codes, bodies, content types, Allow) is
checked in-process by tests/web/test_api_conformance.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.web.conftest import add_subscriber, add_user, release_id
from tests.web.test_serve import _free_port, _stop

pytest.importorskip("schemathesis")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

__all__ = ["release_id"]  # the fixture, imported so it applies here


@pytest.mark.slow
def test_no_api_operation_answers_a_server_error(settings, db, cli, release_id, tmp_path):
    add_user(db, "root", "admin")
    add_subscriber(db, "someone@example.org")
    token = cli("tokens", "create", "schemathesis", "--user", "root").stdout.strip()
    port = _free_port()
    # Its log goes to a file: thousands of requests would fill an unread pipe and stall it.
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "mailer", "serve", "--port", str(port)],
            env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(server, port, log)
        run = subprocess.run(
            [str(SCHEMATHESIS), "run", f"http://127.0.0.1:{port}/api/openapi.json",
             "--header", f"Authorization: Bearer {token}", "--checks", "not_a_server_error",
             "--seed", "17", "--max-examples", "25", "--no-color",
             "--report-dir", str(tmp_path / "schemathesis")],
            capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    finally:
        _stop(server)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


def _wait_healthy(server: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("the server did not answer /healthz")
