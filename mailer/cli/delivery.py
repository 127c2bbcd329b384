"""``mailer campaigns send ID`` (foreground send, resumes a crashed one) and ``mailer worker``."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mailer.cli import context
from mailer.cli.apps import app, campaigns_app
from mailer.delivery import recovery
from mailer.delivery.engine import (
    SendSummary,
    in_doubt_policy,
    send_campaign,
    start_campaign,
    status_counts,
)
from mailer.delivery.mailqueue import start_runner
from mailer.delivery.worker import run_worker


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """Ctrl-C / SIGTERM set the event: the batches in flight finish and are recorded."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, _frame):
        if stop.is_set():  # a second Ctrl-C: the user insists
            raise KeyboardInterrupt
        sys.stderr.write("mailer: stopping after the batches in flight...\n")
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


@campaigns_app.command("send")
def send_command(
    campaign_id: int = typer.Argument(..., metavar="ID"),
    resend_in_doubt: bool = typer.Option(
        False, "--resend-in-doubt",
        help="Re-send deliveries held in doubt (MAILER_IN_DOUBT_POLICY=hold) after you checked "
             "the provider's activity feed."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Send a campaign in the foreground until every recipient is settled or it is paused.

    Resumes a crashed or interrupted send without sending anyone a second copy.
    """
    settings, db = context.settings(), context.database()
    if resend_in_doubt:
        with db.session() as session:
            count = recovery.requeue_held(session, campaign_id, by="campaigns send")
        context.stderr().print(f"{count} in-doubt deliveries queued to be sent again")
    total = start_campaign(db, settings, campaign_id, by="campaigns send")
    with db.session() as session:  # a resumed send's bar starts where the last one stopped
        counts = status_counts(session, campaign_id)
    settled = total - counts["pending"] - counts["in_doubt"]
    with _stop_on_signals() as stop, _progress(total, settled, as_json) as progress:
        summary = send_campaign(db, settings, campaign_id, stop=stop, progress=progress)
    data = summary.to_dict() | {"in_doubt_policy": in_doubt_policy(settings)}
    context.emit(data, as_json, _print_summary)
    if summary.status != "sent":
        sys.stderr.write(f"mailer: error: campaign {campaign_id} is {summary.status}"
                         f"{': ' + summary.reason if summary.reason else ''}\n")
        raise typer.Exit(1)


@contextlib.contextmanager
def _progress(total: int, settled: int, as_json: bool):
    if as_json or not context.show_progress():
        yield None
        return
    bar = Progress(TextColumn("[bold]sending"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[note]}"), TimeElapsedColumn(),
                   console=context.stderr(), transient=False)
    with bar:
        task = bar.add_task("send", total=total or None, completed=settled, note="")

        def update(stats) -> None:
            note = f"{stats.accepted:,} accepted, {stats.failed:,} failed"
            bar.update(task, completed=settled + stats.handled,
                       note=f"{note}; {stats.note}" if stats.note else note)

        yield update


def _print_summary(console: Console, data: dict) -> None:
    console.print(f"campaign {data['campaign_id']}: [bold]{data['status']}[/bold]"
                  + (f" ({data['reason']})" if data.get("reason") else ""), markup=True)
    console.print(f"  {data['accepted']:,} accepted, {data['failed']:,} failed, "
                  f"{data['skipped']:,} skipped, {data['in_doubt']:,} in doubt, "
                  f"{data['pending']:,} pending, of {data['recipients']:,} recipients")
    console.print(f"  this run: {data['sent_this_run']:,} in {data['seconds']:.1f} s "
                  f"({data['rate']:,.0f}/s)")
    policy = data["in_doubt_policy"]
    if data["in_doubt"] or policy["evidence"] == "none":
        console.print(f"  in-doubt policy: {policy['policy']} after {policy['grace_seconds']} s "
                      f"without evidence (evidence: {policy['evidence']})")


@app.command("worker")
def worker_command(
    poll_interval: float = typer.Option(1.0, "--poll", help="Seconds between looks for work."),
    as_json: bool = typer.Option(False, "--json", help="Print a summary as JSON on exit."),
) -> None:
    """Run one send worker: sends batches of every campaign that is sending, and the queued
    signup emails.

    Run several (against PostgreSQL) to scale out; Ctrl-C or SIGTERM stops it after the
    current batches.
    """
    context.service_logging()
    settings, db = context.settings(), context.database()
    context.stderr().print(f"worker started ({settings.transport}, "
                           f"{settings.concurrency} requests in flight); Ctrl-C stops it")
    with _stop_on_signals() as stop:
        mail = start_runner(db, settings, stop)
        try:
            accepted = run_worker(db, settings, stop, poll_interval=poll_interval)
        finally:
            stop.set()
            mail.join(timeout=60)
    context.emit({"accepted": accepted}, as_json,
                 lambda console, d: console.print(f"worker stopped; {d['accepted']:,} accepted"))


__all__ = ["SendSummary", "send_command", "worker_command"]
