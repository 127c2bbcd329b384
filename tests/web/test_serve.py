"""``mailer serve`` and ``mailer run`` as real processes: they answer /healthz, ``run`` sends a
due campaign through its own scheduler and worker, and SIGTERM ends them cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from mailer.campaigns.models import Campaign
from mailer.delivery.oneoff import SystemMail
from mailer.delivery.outgoing import queue_mail
from mailer.storage.base import utcnow
from subscribers.service import add_subscriber as add
from tests.web.conftest import add_subscriber

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(command: str, port: int, **env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mailer", command, "--port", str(port)],
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_healthy(process: subprocess.Popen, port: int, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json()
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("the server did not answer /healthz")


def _stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


@pytest.mark.slow
def test_serve_answers_and_stops_on_sigterm(settings, db):
    port = _free_port()
    process = _start("serve", port)
    try:
        assert _wait_healthy(process, port) == {"status": "ok"}
        page = httpx.get(f"http://127.0.0.1:{port}/subscribe")
        assert page.status_code == 200 and "csrf_token" in page.text
    finally:
        code = _stop(process)
    assert code == 0, process.stderr.read().decode()


@pytest.mark.slow
def test_run_sends_a_due_campaign_with_its_own_scheduler_and_worker(settings, db, topics,
                                                                    release_id):
    for i in range(3):
        add_subscriber(db, f"reader{i}@example.org", topics=["agriculture"])
    with db.session() as session:
        campaign = Campaign(release_id=release_id, query='topic = "agriculture"',
                            subject="Due now", status="scheduled", scheduled_at=utcnow(),
                            created_by="alice", approved_by="bob", approved_at=utcnow())
        session.add(campaign)
        session.flush()
        campaign_id = campaign.id
    port = _free_port()
    process = _start("run", port, MAILER_SCHEDULER_TICK="0.5", MAILER_LEADER_LEASE_SECONDS="3")
    try:
        _wait_healthy(process, port)
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and status != "sent":
            with db.session() as session:
                status = session.get(Campaign, campaign_id).status
            time.sleep(0.2)
    finally:
        code = _stop(process)
    assert status == "sent", process.stderr.read().decode()[-3000:]
    assert code == 0
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 3


@pytest.mark.slow
def test_serve_sends_a_signup_confirmation_itself(settings, db, standin):
    """``mailer serve`` alone (no worker) against the SendGrid stand-in: the signup page
    answers and the queued confirmation reaches the provider within seconds, once."""
    port = _free_port()
    process = _start("serve", port, MAILER_TRANSPORT="sendgrid",
                     MAILER_SENDGRID_API_KEY=standin.api_key, MAILER_SENDGRID_HOST=standin.url,
                     MAILER_PUBLIC_URL=f"http://127.0.0.1:{port}")
    try:
        _wait_healthy(process, port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            page = client.get("/subscribe")
            token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
            answer = client.post("/subscribe", data={"csrf_token": token,
                                                     "email": "new@example.org"})
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 10
        while "new@example.org" not in standin.emails() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # room for a second copy, were one to be sent
    finally:
        code = _stop(process)
    assert standin.emails() == ["new@example.org"], process.stderr.read().decode()[-3000:]
    assert code == 0


@pytest.mark.slow
@pytest.mark.parametrize("command", ["worker", "run"])
def test_worker_and_run_send_queued_confirmations(settings, db, standin, command):
    """With MAILER_WEB_SENDS_MAIL=false a web process sends nothing; ``mailer worker`` and
    ``mailer run`` (whose own runner sends even then) send what is queued."""
    queue_confirmation(db, "queued@example.org")
    port = _free_port()
    args = [sys.executable, "-m", "mailer", command] + (["--port", str(port)]
                                                         if command == "run" else [])
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={
        **os.environ, "MAILER_WEB_SENDS_MAIL": "false", "MAILER_TRANSPORT": "sendgrid",
        "MAILER_SENDGRID_API_KEY": standin.api_key, "MAILER_SENDGRID_HOST": standin.url})
    try:
        deadline = time.monotonic() + 20
        while "queued@example.org" not in standin.emails() and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.1)
    finally:
        code = _stop(process)
    assert standin.emails() == ["queued@example.org"], process.stderr.read().decode()[-3000:]
    assert code == 0


def queue_confirmation(db, email: str) -> None:
    with db.session() as session:
        person, _ = add(session, email=email, status="pending", consent_source="test")
        queue_mail(session, SystemMail("confirm_subscription", "Please confirm", person.id,
                                       person.email, None, {"expires_hours": 168}))
