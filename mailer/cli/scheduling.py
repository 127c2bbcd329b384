"""``mailer scheduler``, ``mailer schedule list`` and ``mailer digests create|list|run``."""

from __future__ import annotations

import signal
import threading
from typing import Any

import typer
from rich.table import Table
from sqlalchemy import select

from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as S
from mailer.cli import context
from mailer.cli.apps import app, digests_app, schedule_app
from mailer.cli.campaigns import default_user
from mailer.errors import InvalidInput
from mailer.scheduling import digests as digest_service
from mailer.scheduling.leader import current_leader
from mailer.scheduling.policy import format_local
from mailer.scheduling.scheduler import run_scheduler

JSON = typer.Option(False, "--json", help="Print one JSON document.")


@app.command("scheduler")
def scheduler_command() -> None:
    """Run the scheduler: starts scheduled campaigns on time, runs digests, polls feeds.

    Only one scheduler leads at a time; start a second as a hot standby. Stops on Ctrl-C or
    SIGTERM.
    """

    context.service_logging()
    settings = context.settings()
    db = context.database()
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            run_scheduler(settings, stop, db)
        except BaseException as exc:  # reported by the main thread like any command error
            failures.append(exc)

    worker = threading.Thread(target=run, name="mailer-scheduler")
    # The signal handler runs on the main thread, which only ever joins: setting the event
    # from a handler that interrupted Event.wait() itself could deadlock on its lock.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    worker.start()
    while worker.is_alive():
        worker.join(0.5)
    if failures:
        raise failures[0]


@schedule_app.command("list")
def schedule_list_command(as_json: bool = JSON) -> None:
    """What goes out when (scheduled campaigns and digests), in the office's time zone."""
    settings = context.settings()
    items: list[dict[str, Any]] = []
    with context.database().session() as session:
        for campaign in session.scalars(select(Campaign).where(Campaign.status == S.SCHEDULED)):
            items.append({
                "kind": "campaign", "id": campaign.id, "title": campaign.subject,
                "at": campaign.scheduled_at.astimezone(settings.zone).isoformat(),
                "at_local": format_local(campaign.scheduled_at, settings),
                "status": campaign.status, "approved_by": campaign.approved_by,
            })
        for digest in digest_service.list_digests(session):
            if not digest.active:
                continue
            data = digest_service.digest_to_dict(digest, settings)
            items.append({"kind": "digest", "id": digest.id, "title": digest.name,
                          "at": data["next_run_at"], "at_local": data["next_run"],
                          "frequency": digest.frequency, "query": digest.query})
    items.sort(key=lambda item: item["at"] or "")
    _warn_without_scheduler(items)
    context.emit(items, as_json, _print_schedule)


def _warn_without_scheduler(items: list[dict[str, Any]]) -> None:
    """Scheduled sends need a running scheduler; say so (on stderr) when none is."""

    leader = current_leader(context.database())
    if leader is not None:
        context.stderr().print(f"scheduler running ({leader})", highlight=False)
    elif items:
        context.stderr().print(
            "warning: no scheduler is running; nothing listed goes out until `mailer "
            "scheduler` (or `mailer run`) starts", highlight=False)


def _print_schedule(console, items: list[dict[str, Any]]) -> None:
    if not items:
        console.print("nothing scheduled")
        return
    table = Table("when", "what", "id", "title")
    for item in items:
        table.add_row(item["at_local"], item["kind"], str(item["id"]), item["title"])
    console.print(table)


@digests_app.command("create")
def digests_create_command(
    frequency: str = typer.Option(..., "--frequency", help="daily or weekly"),
    at: str = typer.Option(..., "--at", help='"Fri 16:00" (weekly) or "07:00" (daily), '
                                             "office time"),
    query: str | None = typer.Option(None, "--query", help="Limit the audience further."),
    name: str | None = typer.Option(None, "--name"),
    template: str = typer.Option("digest", "--template"),
    by: str | None = typer.Option(None, "--by"),
    as_json: bool = JSON,
) -> None:
    """Define a recurring digest for subscribers who chose that frequency."""

    settings = context.settings()
    with context.database().session() as session:
        digest = digest_service.create_digest(
            session, settings, frequency=frequency, at=at, query=query, name=name,
            template=template, by=by or default_user())
        data = digest_service.digest_to_dict(digest, settings)
    context.emit(data, as_json, _print_digest)


@digests_app.command("list")
def digests_list_command(as_json: bool = JSON) -> None:
    """Every digest with its next run (office time) and what its last run did."""
    settings = context.settings()
    with context.database().session() as session:
        data = [digest_service.digest_to_dict(d, settings)
                for d in digest_service.list_digests(session)]
    context.emit(data, as_json, _print_digests)


@digests_app.command("run")
def digests_run_command(
    digest_id: int = typer.Argument(..., metavar="ID"),
    override_blackout: bool = typer.Option(False, "--override-blackout"),
    reason: str | None = typer.Option(None, "--reason", help="Why the blackout is overridden."),
    by: str | None = typer.Option(None, "--by"),
    as_json: bool = JSON,
) -> None:
    """Run a digest now (covers releases since its last run) and start its campaigns."""

    if override_blackout and not (reason or "").strip():
        raise InvalidInput('--override-blackout needs --reason "why this mailing must go out"')
    result = digest_service.run_digest(
        context.database(), context.settings(), digest_id, by=by or default_user(),
        override_reason=reason.strip() if override_blackout and reason else None)
    context.emit(result, as_json, _print_run)


@digests_app.command("disable")
def digests_disable_command(digest_id: int = typer.Argument(..., metavar="ID"),
                            as_json: bool = JSON) -> None:
    """Stop a digest from going out (its definition and history stay)."""
    _set_active(digest_id, False, as_json)


@digests_app.command("enable")
def digests_enable_command(digest_id: int = typer.Argument(..., metavar="ID"),
                           as_json: bool = JSON) -> None:
    """Let a disabled digest go out again (it covers releases since its last run)."""
    _set_active(digest_id, True, as_json)


def _set_active(digest_id: int, active: bool, as_json: bool) -> None:
    settings = context.settings()
    with context.database().session() as session:
        digest = digest_service.set_active(session, digest_id, active)
        data = digest_service.digest_to_dict(digest, settings)
    context.emit(data, as_json, _print_digest)


def _print_digest(console, data: dict[str, Any]) -> None:
    upcoming = f"next {data['next_run']}" if data["active"] else "disabled"
    console.print(f"digest {data['id']} {data['name']!r}: {data['frequency']} at {data['at']}"
                  f" ({upcoming})")


def _print_digests(console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("no digests")
        return
    table = Table("id", "name", "frequency", "at", "next run", "last result")
    for row in rows:
        table.add_row(str(row["id"]), row["name"], row["frequency"], row["at"],
                      row["next_run"] or "inactive", row["last_result"] or "")
    console.print(table)


def _print_run(console, result: dict[str, Any]) -> None:
    if not result["campaigns"]:
        console.print(f"digest {result['digest_id']}: nothing new for anyone "
                      f"({result['releases']} release(s) in the window)")
        return
    for item in result["campaigns"]:
        console.print(f"campaign {item['id']}: {item['expected']} subscriber(s), "
                      f"{item['outcome']}")
