"""Delivery status commands: ``mailer events import``, ``mailer campaigns status|report``,
``mailer deliveries show``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape as esc
from rich.table import Table

from mailer.campaigns import actions as ops
from mailer.campaigns.service import get_campaign
from mailer.cli import context
from mailer.cli.apps import campaigns_app, deliveries_app, events_app
from mailer.errors import InvalidInput
from mailer.tracking.events import needs_scrub, scrub
from mailer.tracking.ingest import IngestSummary, ingest_with_retry
from mailer.tracking.report_html import render_report_html
from mailer.tracking.reports import (
    campaign_report,
    person_timeline,
    write_delivery_log,
)

#: Events stored per transaction when replaying a file (the webhook's own batch size).
IMPORT_BATCH = 1000


@events_app.command("import")
def events_import(
    file: Path = typer.Argument(..., help="A saved Event Webhook body (JSON array; - for stdin)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Replay a saved SendGrid Event Webhook body through the same path as the webhook.

    Events already stored are recognised by their id and change nothing.
    """
    settings = context.settings()
    events = load_events_file(file, settings.max_import_bytes)
    db = context.database()
    summary = IngestSummary()
    for start in range(0, len(events), IMPORT_BATCH):
        summary.add(ingest_with_retry(db, events[start:start + IMPORT_BATCH], settings))
    for warning in summary.warnings:
        sys.stderr.write(f"mailer: warning: {warning}\n")
    context.emit(summary.to_dict(), as_json, _print_import)


def load_events_file(file: Path, limit: int) -> list[Any]:
    """Read a JSON array (or one JSON object per line). Raises InvalidInput, OSError."""
    if str(file) == "-":
        stdin = getattr(sys.stdin, "buffer", None)
        data = stdin.read(limit + 1) if stdin else sys.stdin.read(limit + 1).encode("utf-8")
    else:
        with file.open("rb") as handle:
            data = handle.read(limit + 1)
    if len(data) > limit:
        raise InvalidInput(f"{file}: larger than MAILER_MAX_IMPORT_BYTES ({limit} bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{file}: not UTF-8 text") from None
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = _json_lines(file, text)
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not isinstance(parsed, list):
        raise InvalidInput(f"{file}: expected a JSON array of SendGrid events")
    return scrub(parsed) if needs_scrub(text) else parsed


def _json_lines(file: Path, text: str) -> list[Any]:
    events = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except ValueError:
            raise InvalidInput(f"{file}: line {number} is not valid JSON") from None
    return events


def _print_import(console: Console, data: dict) -> None:
    console.print(f"{data['received']} events read: {data['stored']} stored, "
                  f"{data['duplicates']} already known, {data['invalid']} invalid; "
                  f"{data['matched']} matched a delivery, {data['unmatched']} did not.")
    for change in data["suppressed"]:
        console.print(f"  {change['email']} is now {change['status']}: {change['cause']}",
                      markup=False)
    if data["paused_campaigns"]:
        ids = ", ".join(str(c) for c in data["paused_campaigns"])
        console.print(f"  campaigns paused by the reputation guard: {ids}")


@campaigns_app.command("status")
def campaigns_status(
    campaign_id: int = typer.Argument(..., metavar="ID"),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Where a campaign stands: its state and how many deliveries are in each status."""
    with context.database().session() as session:
        data = ops.status(session, get_campaign(session, campaign_id), context.settings())
    context.emit(data, as_json, _print_status)


def _print_status(console: Console, data: dict) -> None:
    console.print(f"campaign {data['id']}: [bold]{data['status']}[/bold]"
                  + (f" ({esc(data['status_reason'])})" if data.get("status_reason") else ""))
    table = Table(show_header=False, box=None, pad_edge=False)
    shown = ("recipients", "delivered", "bounced") if data["provider_events"] else ("recipients",)
    for name, value in data["counts"].items():
        if value or name in shown:
            # The report's word for the rows handed off ("written", "sent"), not "accepted".
            table.add_row(data["handed_off_as"] if name == "accepted" else name, f"{value:,}")
    console.print(table)
    policy = data.get("in_doubt_policy")
    if policy and (data["counts"].get("in_doubt") or policy["evidence"] == "none"):
        console.print(f"in-doubt deliveries: {policy['policy']} after {policy['grace_seconds']} s "
                      f"without evidence (evidence: {policy['evidence']})")


@campaigns_app.command("report")
def campaigns_report(
    campaign_id: int = typer.Argument(..., metavar="ID"),
    html: Path | None = typer.Option(None, "--html", help="Write a self-contained HTML report."),
    csv_file: Path | None = typer.Option(None, "--csv", help="Write the delivery log as CSV."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Rates, breakdowns by topic and county, the slowest domains, events over time."""
    settings = context.settings()
    with context.database().session() as session:
        report = campaign_report(session, campaign_id, settings)
        if csv_file is not None:
            with csv_file.open("w", newline="", encoding="utf-8") as out:
                report["csv_rows"] = write_delivery_log(session, campaign_id, out, settings)
            report["csv"] = str(csv_file)
    if html is not None:
        html.write_text(render_report_html(report), encoding="utf-8")
        report["html"] = str(html)
    context.emit(report, as_json, _print_report)


def _print_report(console: Console, report: dict) -> None:
    console.print(f"campaign {report['id']}: {esc(report['subject'])} — [bold]{report['status']}"
                  "[/bold]")
    funnel, word = report["funnel"], report["handed_off_as"]
    if not report["provider_events"]:
        console.print(f"recipients {funnel['recipients']:,} · {word} {funnel['sent']:,} "
                      f"(the {context.settings().transport} transport reports no deliveries, "
                      "opens or clicks)", markup=False)
    else:
        console.print(f"recipients {funnel['recipients']:,} · {word} {funnel['sent']:,} · "
                      f"arrived {funnel['arrived']:,} · opened {funnel['opened']:,} · "
                      f"clicked {funnel['clicked']:,}")
    rates = Table("rate", "value", box=None)
    for name, value in report["rates"].items():
        rates.add_row(name, "—" if value is None else f"{value:.2%}")
    console.print(rates)
    for key, label in (("by_topic", "topic"), ("by_county", "county")):
        if report[key]:
            table = Table(label, "recipients", "delivered", "bounced", "opened", "complained",
                          box=None)
            for row in report[key][:10]:
                table.add_row(esc(str(row[label] or "(not on file)")), *(
                    f"{row[m]:,}" for m in ("recipients", "delivered", "bounced", "opened",
                                            "complained")))
            console.print(table)
    if report["slowest_domains"]:
        slow = Table("slowest domain", "delivered", "median s", "p90 s", box=None)
        for row in report["slowest_domains"]:
            slow.add_row(esc(row["domain"]), str(row["delivered"]), str(row["median_seconds"]),
                         str(row["p90_seconds"]))
        console.print(slow)
    for key in ("html", "csv"):
        if key in report:
            console.print(f"{key.upper()} written to {report[key]}")


@deliveries_app.command("show")
def deliveries_show(
    email: str = typer.Argument(..., help="The person's address."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """One person's timeline across campaigns: deliveries and provider events, in the
    office's time zone."""
    settings = context.settings()
    with context.database().session() as session:
        data = person_timeline(session, email, settings)
    context.emit(data, as_json, _print_timeline)


#: The times a delivery row keeps, in the order they happen.
DELIVERY_TIMES = ("sent_at", "delivered_at", "opened_at", "clicked_at", "bounced_at",
                  "complained_at", "unsubscribed_at")


def _print_timeline(console: Console, data: dict) -> None:
    subscriber = data["subscriber"]
    status = subscriber["status"] if subscriber else "not a subscriber"
    console.print(f"{data['email']} — {status}", markup=False)
    for delivery in data["deliveries"]:
        console.print(f"\ncampaign {delivery['campaign_id']} “{esc(delivery['subject'])}”: "
                      f"[bold]{_status_word(delivery['status'], data)}[/bold]")
        times = [f"{name.removesuffix('_at')} {context.local(delivery[name])}"
                 for name in DELIVERY_TIMES if delivery.get(name)]
        if times:
            console.print("  " + "; ".join(times), markup=False)
        for event in delivery["events"]:
            _print_event(console, event)
    if data["unmatched_events"]:
        console.print("\nevents not tied to a delivery:")
        for event in data["unmatched_events"]:
            _print_event(console, event)
    if subscriber and subscriber["history"]:
        console.print("\nstatus history:")
        for change in subscriber["history"]:
            move = (change["to"] if change["from"] is None
                    else f"{change['from']} → {change['to']}")
            console.print(f"  {context.local(change['at'])}  {move}: {change['cause']}",
                          markup=False)


def _status_word(status: str, data: dict) -> str:
    """The delivery status in the report's words: to the outbox an accepted message was
    written to a folder, not sent (``campaigns report`` says "written" too)."""
    if status == "accepted" and data.get("handed_off_as") == "written":
        return "written"
    return status


def _print_event(console: Console, event: dict) -> None:
    reason = f" — {event['reason']}" if event["reason"] else ""
    console.print(f"  {context.local(event['at'])}  {event['type']}{reason}", markup=False)
