"""``mailer campaigns create|list|show|edit|approve|schedule|pause|resume|cancel|retry``.

(``send``, ``preview``, ``test``, ``status`` and ``report`` live with delivery, render and
tracking.) Times are typed and shown in the office's zone (MAILER_TIMEZONE) and stored in UTC.
"""

from __future__ import annotations

import getpass
import os
from typing import Any

import typer
from rich.table import Table

from mailer.campaigns import actions as ops
from mailer.campaigns import service
from mailer.cli import context
from mailer.cli.apps import campaigns_app
from mailer.errors import InvalidInput, UsageError
from mailer.scheduling.leader import current_leader
from mailer.scheduling.policy import format_local
from mailer.scheduling.times import parse_when

JSON = typer.Option(False, "--json", help="Print one JSON document.")
REASON = typer.Option(None, "--reason", help="Why (recorded in the campaign's log).")


def default_user() -> str | None:
    """Who is acting when --by is not given: MAILER_USER, else the login name."""
    try:
        return os.environ.get("MAILER_USER") or getpass.getuser()
    except (KeyError, OSError):
        return None


BY = typer.Option(None, "--by", help="Who is acting (default: MAILER_USER or your login).")


def _checked(clean):
    """A typer callback running a campaign field's own check, so a bad value is a usage
    error (exit 2) before anything is opened."""
    def callback(value: str | None) -> str | None:
        if value is not None:
            try:
                clean(value)
            except InvalidInput as exc:
                raise typer.BadParameter(str(exc)) from None
        return value
    return callback


PREHEADER = typer.Option(
    None, "--preheader", callback=_checked(service.clean_preheader),
    help=f"The inbox preview line (at most {service.PREHEADER_MAX} characters; "
         "default: the release's subtitle or first sentences).")
INTRO = typer.Option(None, "--intro", callback=_checked(service.clean_intro),
                     help="A short plain-text note above the release (blank lines "
                          "separate paragraphs).")


def _dict(campaign, settings) -> dict[str, Any]:
    data = service.campaign_to_dict(campaign)
    data["scheduled_for"] = (format_local(campaign.scheduled_at, settings)
                             if campaign.scheduled_at else None)
    return data


def _print_campaign(console, data: dict[str, Any]) -> None:
    console.print(f"campaign {data['id']}: {data['status']} — {data['subject']}")
    if data.get("scheduled_for"):
        was = "was " if data["status"] in ("cancelled", "missed") else ""
        console.print(f"  {was}scheduled for {data['scheduled_for']}")
    if data.get("approved_by"):
        console.print(f"  approved by {data['approved_by']}")
    if data.get("blackout_override_reason"):
        console.print(f"  election blackout overridden by {data['blackout_override_by']}: "
                      f"{data['blackout_override_reason']}")
    if data.get("status_reason") and data["status"] != "scheduled":  # that one repeats the time
        console.print(f"  {data['status_reason']}")
    reach = data.get("audience")
    if reach and "error" in reach:
        console.print(f"  audience: cannot count: {reach['error']}", markup=False)
    elif reach:
        digests = (f"; {reach['in_digests']:,} more get it in their daily or weekly digest"
                   if reach["in_digests"] else "")
        console.print(f"  audience: {reach['now']:,} get this release now{digests}",
                      markup=False)
    for entry in data.get("log", []):
        same = entry["from"] in (None, entry["to"])  # a creation or a note, not a move
        arrow = entry["to"] if same else f"{entry['from']} → {entry['to']}"
        who = f" by {entry['by']}" if entry["by"] else ""
        why = f": {entry['reason']}" if entry["reason"] else ""
        console.print(f"  {entry['at_local']}  {arrow}{who}{why}")


def _mutate(campaign_id: int, as_json: bool, action) -> None:
    """Run ``action(session, campaign, settings)`` in one unit of work and print the result."""
    settings = context.settings()
    with context.database().session() as session:
        campaign = service.get_campaign(session, campaign_id, for_update=True)
        action(session, campaign, settings)
        data = _dict(campaign, settings)
    context.emit(data, as_json, _print_campaign)


@campaigns_app.command("create")
def create_command(
    release: int = typer.Option(..., "--release", help="The release to send."),
    segment: str | None = typer.Option(None, "--segment", help="A saved segment's name."),
    query: str | None = typer.Option(None, "--query", help="An audience query."),
    template: str = typer.Option("press_release", "--template"),
    subject: str | None = typer.Option(None, "--subject", help="Default: the release title."),
    preheader: str | None = PREHEADER,
    intro: str | None = INTRO,
    by: str | None = BY,
    as_json: bool = JSON,
) -> None:
    """Create a draft campaign of a release for an audience."""
    settings = context.settings()
    with context.database().session() as session:
        campaign = ops.create(
            session, release_id=release, segment=segment, query=query, template=template,
            subject=subject, by=by or default_user(), settings=settings,
            preheader=preheader, intro=intro)
        data = _dict(campaign, settings)
    context.emit(data, as_json, _print_campaign)


@campaigns_app.command("list")
def list_command(
    status: str | None = typer.Option(None, "--status", help="Only campaigns in this state."),
    as_json: bool = JSON,
) -> None:
    """Campaigns, newest first."""
    settings = context.settings()
    with context.database().session() as session:
        data = [_dict(c, settings) for c in service.list_campaigns(session, status=status)]
    context.emit(data, as_json, _print_list)


def _print_list(console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("no campaigns")
        return
    table = Table("id", "status", "subject", "scheduled for", "approved by")
    for row in rows:
        table.add_row(str(row["id"]), row["status"], row["subject"],
                      row["scheduled_for"] or "", row["approved_by"] or "")
    console.print(table)


@campaigns_app.command("show")
def show_command(campaign_id: int = typer.Argument(..., metavar="ID"),
                 as_json: bool = JSON) -> None:
    """One campaign with its history (every state change: who, when, why)."""
    settings = context.settings()
    with context.database().session() as session:
        campaign = service.get_campaign(session, campaign_id)
        data = _dict(campaign, settings)
        data["audience"] = ops.audience(session, campaign)
        data["log"] = [
            {**service.log_to_dict(e), "at_local": format_local(e.at, settings)}
            for e in service.campaign_log(session, campaign_id)
        ]
    context.emit(data, as_json, _print_campaign)


@campaigns_app.command("duplicate")
def duplicate_command(campaign_id: int = typer.Argument(..., metavar="ID"), by: str | None = BY,
                      as_json: bool = JSON) -> None:
    """Copy a campaign into a new draft (same release, audience, template and subject)."""
    settings = context.settings()
    with context.database().session() as session:
        copy = ops.duplicate(session, service.get_campaign(session, campaign_id),
                             by=by or default_user())
        data = _dict(copy, settings)
    context.emit(data, as_json, _print_campaign)


@campaigns_app.command("edit")
def edit_command(
    campaign_id: int = typer.Argument(..., metavar="ID"),
    subject: str | None = typer.Option(None, "--subject"),
    query: str | None = typer.Option(None, "--query"),
    segment: str | None = typer.Option(None, "--segment"),
    template: str | None = typer.Option(None, "--template"),
    preheader: str | None = PREHEADER,
    intro: str | None = INTRO,
    by: str | None = BY,
    as_json: bool = JSON,
) -> None:
    """Change a campaign; an approved or scheduled one goes back to draft. An empty
    --preheader or --intro removes it."""
    _mutate(campaign_id, as_json, lambda session, campaign, settings: ops.edit(
        session, campaign, by=by or default_user(), settings=settings, subject=subject, query=query,
        segment=segment, template=template, preheader=preheader, intro=intro))


@campaigns_app.command("approve")
def approve_command(
    campaign_id: int = typer.Argument(..., metavar="ID"),
    by: str = typer.Option(..., "--by", help="The approver (not the author)."),
    as_json: bool = JSON,
) -> None:
    """Approve a draft (runs the template check; the author cannot approve)."""
    _mutate(campaign_id, as_json, lambda session, campaign, settings: ops.approve(
        session, campaign, by=by, settings=settings))


@campaigns_app.command("schedule")
def schedule_command(
    campaign_id: int = typer.Argument(..., metavar="ID"),
    at: str | None = typer.Option(
        None, "--at", help="ISO 8601; without an offset it is office time (MAILER_TIMEZONE)."),
    now: bool = typer.Option(False, "--now", help="Start at once."),
    override_blackout: bool = typer.Option(
        False, "--override-blackout", help="Send despite the election blackout (needs --reason)."),
    reason: str | None = typer.Option(None, "--reason", help="Why the blackout is overridden."),
    by: str | None = BY,
    as_json: bool = JSON,
) -> None:
    """Schedule an approved campaign (quiet hours and the election blackout are checked)."""
    if (at is None) == (not now):
        raise UsageError("give exactly one of --at or --now")
    settings = context.settings()
    when = None if now else parse_when(at, settings)

    def action(session, campaign, settings):
        ops.schedule(session, campaign, at=when, settings=settings, by=by or default_user(),
                     override_blackout=override_blackout, reason=reason)

    if not now:
        _mutate(campaign_id, as_json, action)
        _warn_without_scheduler()
        return

    db = context.database()
    ops.send_now(db, settings, campaign_id, by=by or default_user(),
                 override_blackout=override_blackout, reason=reason)
    with db.session() as session:
        data = _dict(service.get_campaign(session, campaign_id), settings)
    context.emit(data, as_json, _print_campaign)


def _warn_without_scheduler() -> None:
    if current_leader(context.database()) is None:
        context.stderr().print(
            "warning: no scheduler is running; the campaign goes out when `mailer scheduler` "
            "(or `mailer run`) is running at its time", highlight=False)


@campaigns_app.command("pause")
def pause_command(campaign_id: int = typer.Argument(..., metavar="ID"),
                  reason: str | None = REASON, by: str | None = BY,
                  as_json: bool = JSON) -> None:
    """Pause a send (senders stop within one batch)."""
    _mutate(campaign_id, as_json, lambda session, campaign, settings: ops.pause(
        session, campaign, by=by or default_user(), settings=settings, reason=reason))


@campaigns_app.command("resume")
def resume_command(campaign_id: int = typer.Argument(..., metavar="ID"),
                   reason: str | None = REASON, by: str | None = BY,
                   as_json: bool = JSON) -> None:
    """Resume a paused send (workers pick it up again)."""
    _mutate(campaign_id, as_json, lambda session, campaign, settings: ops.resume(
        session, campaign, by=by or default_user(), settings=settings, reason=reason))


@campaigns_app.command("cancel")
def cancel_command(campaign_id: int = typer.Argument(..., metavar="ID"),
                   reason: str | None = REASON, by: str | None = BY,
                   as_json: bool = JSON) -> None:
    """Cancel a campaign that has not finished; a scheduled one will not go out."""
    _mutate(campaign_id, as_json, lambda session, campaign, settings: ops.cancel(
        session, campaign, by=by or default_user(), settings=settings, reason=reason))


@campaigns_app.command("retry")
def retry_command(campaign_id: int = typer.Argument(..., metavar="ID"), by: str | None = BY,
                  as_json: bool = JSON) -> None:
    """Send a sent campaign again to its recipients whose delivery failed (only those worth
    another try, who can still be mailed); the workers send them, or `campaigns send ID`."""
    settings = context.settings()
    with context.database().session() as session:
        campaign = service.get_campaign(session, campaign_id, for_update=True)
        retried = ops.retry(session, campaign, by=by or default_user(), settings=settings)
        data = {**_dict(campaign, settings), "retried": retried}
    context.emit(data, as_json, _print_retry)


def _print_retry(console, data: dict[str, Any]) -> None:
    people = f"{data['retried']:,} recipient{'s' if data['retried'] != 1 else ''}"
    console.print(f"campaign {data['id']}: {people} queued again; the workers send them "
                  f"(or run `mailer campaigns send {data['id']}`)", markup=False)
