"""``mailer serve``, ``mailer run``, ``mailer users …`` and ``mailer tokens …``."""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator

import typer

from mailer.cli import context
from mailer.cli.apps import app, tokens_app, users_app
from mailer.delivery.mailqueue import start_runner
from mailer.delivery.worker import run_worker
from mailer.errors import InvalidInput
from mailer.scheduling.scheduler import run_scheduler
from mailer.storage.db import secret_key
from mailer.web.auth import (
    create_api_token,
    create_user,
    disable_user,
    list_api_tokens,
    list_users,
    remove_user,
    revoke_api_token,
    set_password,
    set_role,
)

log = logging.getLogger("mailer.run")


#: What uvicorn imports and calls in each process of ``--workers N`` (N > 1).
WORKER_APP = "mailer.cli.web:worker_app"
#: How long the supervisor waits for a worker to answer its health check before killing it
#: as hung. A starting worker imports the whole app first, which takes longer than uvicorn's
#: 5 s default on a busy machine: it was killed and restarted in a loop.
WORKER_START_SECONDS = 30


def _serve_web(host: str, port: int, settings, db, workers: int, web_app=None) -> None:
    """Serve the web app until SIGTERM or Ctrl-C: in this process (``web_app``, or one built
    here), or in ``workers`` uvicorn worker processes sharing one listening socket (each
    builds its own app from the same settings and database; rate limits and lockouts are
    counted in the database, so they count across all of them). A worker that dies is
    replaced by the supervisor."""
    import uvicorn  # function-level: uvicorn and FastAPI cost every other command 0.3 s
    from uvicorn.supervisors import Multiprocess

    from mailer.web.app import create_app, serving  # function-level: FastAPI costs 0.3 s

    if workers > 1:
        secret_key(db, settings)  # made here once, not raced for by the workers as they start
    if workers > 1:
        web_app = WORKER_APP
    else:
        web_app = serving(web_app if web_app is not None else create_app(settings, db))
    config = uvicorn.Config(web_app, host=host, port=port, proxy_headers=True,
                            forwarded_allow_ips="127.0.0.1", log_level="info",
                            server_header=False, workers=workers, factory=workers > 1,
                            timeout_worker_healthcheck=WORKER_START_SECONDS)
    if workers == 1:
        uvicorn.Server(config).run()
    else:
        # The supervisor answers SIGTERM and SIGINT by stopping every worker, then returns.
        Multiprocess(config, sockets=[config.bind_socket()]).run()


def _web_without_mail(settings, db, workers: int):
    """For ``run``: the in-process app (None with ``--workers N``) with its own mail-queue
    runner switched off, and the event that wakes ``run``'s runner when a request queues
    mail. Worker processes read their settings from the environment, so they are told there;
    ``run``'s runner then finds their mail at its next poll."""
    from mailer.web.app import create_app  # function-level: see _serve_web

    if workers > 1:
        os.environ["MAILER_WEB_SENDS_MAIL"] = "false"
        return None, threading.Event()
    web_app = create_app(settings.model_copy(update={"web_sends_mail": False}), db)
    return web_app, web_app.state.mail_wake


def worker_app():
    """The app of one worker process of ``serve --workers N`` / ``run --workers N``: uvicorn
    imports this module afresh in each process and calls this (settings come from the
    environment, like the parent's; the parent has already brought the schema up to date)."""
    from mailer.web.app import create_app, serving  # function-level: see _serve_web

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    context.service_logging()
    return serving(create_app(context.settings(), context.database()))


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    workers: int = typer.Option(1, "--workers", min=1,
                                help="Web worker processes (they share rate limits through "
                                     "the database)."),
) -> None:
    """Run the web app alone: constituent pages, /admin, /api, the webhook and /healthz.

    It also sends the queued signup emails, unless MAILER_WEB_SENDS_MAIL=false (then run
    `mailer worker` beside it)."""

    context.service_logging()
    with _quiet_sigterm(threading.Event()):
        _serve_web(host, port, context.settings(), context.database(), workers)


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
    workers: int = typer.Option(1, "--workers", min=1,
                                help="Web worker processes (the scheduler and the send worker "
                                     "stay one each, in this process)."),
) -> None:
    """Run everything on one machine: the web app, the scheduler, one send worker and the
    mail queue (signup confirmations).

    The web app runs in the main thread (or, with ``--workers N``, in N processes it
    supervises); the others run in threads that stop when the web server stops (Ctrl-C or
    SIGTERM).
    """

    context.service_logging()
    settings, db = context.settings(), context.database()
    stop = threading.Event()
    # The queue runner below sends the web's queued mail, so the app does not run its own.
    web_app, wake = _web_without_mail(settings, db, workers)
    threads = [
        threading.Thread(target=_guard,
                         args=("scheduler", run_scheduler, settings, stop, db),
                         name="mailer-scheduler", daemon=True),
        threading.Thread(target=_guard, args=("worker", run_worker, db, settings, stop),
                         name="mailer-worker", daemon=True),
    ]
    for thread in threads:
        thread.start()
    threads.append(start_runner(db, settings, stop, wake=wake))
    try:
        with _quiet_sigterm(stop):
            _serve_web(host, port, settings, db, workers, web_app)
    finally:
        stop.set()
        wake.set()
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
        rows = list_users(session)
    context.emit(rows, as_json, lambda console, data: [
        console.print(f"{row['name']}\t{row['role']}" + ("\tdisabled" if row["disabled"] else ""))
        for row in data])


@users_app.command("role")
def users_role(
    name: str = typer.Argument(..., help="The user's login name."),
    role: str = typer.Option(..., "--role", help="author, approver or admin."),
) -> None:
    """Give a user another role (the last admin who can log in keeps theirs)."""
    with context.database().session() as session:
        user = set_role(session, name, role)
        typer.echo(f"{user.name} is now an {user.role}")


@users_app.command("disable")
def users_disable(name: str = typer.Argument(..., help="The user's login name.")) -> None:
    """Disable a user: their sessions end, they cannot log in, their API tokens are refused.
    ``mailer users password NAME`` enables them again."""
    with context.database().session() as session:
        disable_user(session, name)
    typer.echo(f"user {name} disabled")


@users_app.command("remove")
def users_remove(name: str = typer.Argument(..., help="The user's login name.")) -> None:
    """Delete a user and their API tokens."""
    with context.database().session() as session:
        remove_user(session, name)
    typer.echo(f"user {name} removed")


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
