"""``mailer serve``, ``mailer run``, ``mailer users add`` and ``mailer tokens create``."""

from __future__ import annotations

import contextlib
import getpass
import logging
import signal
import sys
import threading
from collections.abc import Iterator

import typer
from sqlalchemy import select

from mailer.cli import context
from mailer.cli.apps import app, tokens_app, users_app
from mailer.delivery.mailqueue import start_runner
from mailer.delivery.worker import run_worker
from mailer.errors import InvalidInput
from mailer.scheduling.scheduler import run_scheduler
from mailer.web.auth import (
    create_api_token,
    create_user,
    list_api_tokens,
    revoke_api_token,
    set_password,
)
from mailer.web.models import User

log = logging.getLogger("mailer.run")


def _uvicorn_server(host: str, port: int, web_app):
    import uvicorn

    config = uvicorn.Config(web_app, host=host, port=port, proxy_headers=True,
                            forwarded_allow_ips="127.0.0.1", log_level="info",
                            server_header=False)
    return uvicorn.Server(config)


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
) -> None:
    """Run the web app alone: constituent pages, /admin, /api, the webhook and /healthz.

    It also sends the queued signup emails, unless MAILER_WEB_SENDS_MAIL=false (then run
    `mailer worker` beside it)."""

    from mailer.web.app import create_app  # function-level: FastAPI costs every command 0.3 s

    context.service_logging()
    web_app = create_app(context.settings(), context.database())
    with _quiet_sigterm(threading.Event()):
        _uvicorn_server(host, port, web_app).run()


@contextlib.contextmanager
def _quiet_sigterm(stop: threading.Event) -> Iterator[None]:
    """SIGTERM sets ``stop`` instead of killing the process.

    uvicorn shuts down gracefully on SIGTERM, then re-raises the signal to the handler that
    was installed before it; with Python's default that would kill the process before the
    scheduler and worker threads are told to stop (a worker mid-batch would leave rows in
    doubt). With this handler the process ends normally, exit status 0.
    """
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@app.command("run")
def run_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
) -> None:
    """Run everything on one machine: the web app, the scheduler, one send worker and the
    mail queue (signup confirmations).

    The web app runs in the main thread; the others run in threads that stop when the web
    server stops (Ctrl-C or SIGTERM).
    """

    from mailer.web.app import create_app  # function-level: FastAPI costs every command 0.3 s

    context.service_logging()
    settings, db = context.settings(), context.database()
    stop = threading.Event()
    # The queue runner below sends the web's queued mail, so the app does not run its own.
    web_app = create_app(settings.model_copy(update={"web_sends_mail": False}), db)
    threads = [
        threading.Thread(target=_guard,
                         args=("scheduler", run_scheduler, settings, stop, db),
                         name="mailer-scheduler", daemon=True),
        threading.Thread(target=_guard, args=("worker", run_worker, db, settings, stop),
                         name="mailer-worker", daemon=True),
    ]
    for thread in threads:
        thread.start()
    threads.append(start_runner(db, settings, stop, wake=web_app.state.mail_wake))
    try:
        with _quiet_sigterm(stop):
            _uvicorn_server(host, port, web_app).run()
    finally:
        stop.set()
        web_app.state.mail_wake.set()
        for thread in threads:
            thread.join(timeout=60)  # the worker finishes and records its batch


def _guard(name: str, target, *args, restart_after: float = 30.0) -> None:
    """Run a background loop until the process stops; a crash is logged and the loop starts
    again after ``restart_after`` seconds, so one bad moment never silently ends sending."""
    stop = next(arg for arg in args if isinstance(arg, threading.Event))
    while not stop.is_set():
        try:
            target(*args)
            return
        except Exception:
            log.exception("the %s stopped with an error; restarting in %.0f s", name,
                          restart_after)
            stop.wait(restart_after)


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="The user's login name."),
    role: str = typer.Option(..., "--role", help="author, approver or admin."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password from standard input."),
) -> None:
    """Add a dashboard user (asks for the password, or reads it from stdin)."""

    password = _read_password(password_stdin)
    with context.database().session() as session:
        user = create_user(session, name, role, password)
        typer.echo(f"user {user.name} added ({user.role})")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise InvalidInput("the two passwords differ")
    if not password:
        raise InvalidInput("no password given")
    return password


@tokens_app.command("create")
def tokens_create(
    name: str = typer.Argument(..., help="What the token is for (unique)."),
    user: str | None = typer.Option(None, "--user", help="Act as this dashboard user."),
) -> None:
    """Create an API bearer token and print it once (only its SHA-256 is stored)."""

    with context.database().session() as session:
        token = create_api_token(session, name, user)
    typer.echo(token)
    typer.echo("Store this token now: it is not shown again.", err=True)


@users_app.command("list")
def users_list(as_json: bool = typer.Option(False, "--json", help="One JSON document.")) -> None:
    """List dashboard users (never their password hashes)."""
    with context.database().session() as session:
        rows = [{"name": u.name, "role": u.role, "created_at": u.created_at.isoformat()}
                for u in session.scalars(select(User).order_by(User.name))]
    context.emit(rows, as_json, lambda console, data: [
        console.print(f"{row['name']}\t{row['role']}") for row in data])


@users_app.command("password")
def users_password(
    name: str = typer.Argument(..., help="The user's login name."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the new password from standard input."),
) -> None:
    """Set a user's password; their open dashboard sessions end."""

    password = _read_password(password_stdin)
    with context.database().session() as session:
        set_password(session, name, password)
    typer.echo(f"password changed for {name}")


@tokens_app.command("list")
def tokens_list(as_json: bool = typer.Option(False, "--json", help="One JSON document.")) -> None:
    """List API tokens: name, user, created, last used (the tokens themselves are not kept)."""

    with context.database().session() as session:
        rows = list_api_tokens(session)
    context.emit(rows, as_json, lambda console, data: [
        console.print(f"{row['name']}\t{row['user'] or '-'}\tlast used "
                      f"{context.local(row['last_used_at'], empty='never')}") for row in data])


@tokens_app.command("revoke")
def tokens_revoke(name: str = typer.Argument(..., help="The token's name.")) -> None:
    """Revoke an API token at once (calls with it get 401)."""

    with context.database().session() as session:
        revoke_api_token(session, name)
    typer.echo(f"token {name} revoked")
