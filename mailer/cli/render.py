"""``mailer templates check``, ``mailer campaigns preview`` and ``mailer campaigns test``.

Preview and test never touch the campaign: no state change, no ``deliveries`` row. A test copy
goes through the configured transport with "[TEST]" in its subject and no campaign id, so
provider events for it can never be counted in the campaign's report.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import typer

from mailer.campaigns.content import compile_for
from mailer.campaigns.service import get_campaign
from mailer.cli import context
from mailer.cli.apps import campaigns_app, templates_app
from mailer.delivery.oneoff import (
    personalized_copy,
    refused,
    send_one_off,
    subscriber_for_preview,
    test_copy,
)
from mailer.errors import InvalidInput, TemplateError
from mailer.render import GMAIL_CLIP_BYTES
from mailer.render.check import check_all
from mailer.transports import get_transport

JSON = typer.Option(False, "--json", help="Print one JSON document.")


@templates_app.command("check")
def check_command(as_json: bool = JSON) -> None:
    """Lint every template: render it with sample data, report template, line and cause."""
    settings = context.settings()
    problems = check_all(settings)
    folder = str(settings.effective_templates_dir)
    if as_json:
        context.emit({"ok": not problems, "templates_dir": folder,
                      "problems": [dataclasses.asdict(p) for p in problems]}, True)
    else:
        for problem in problems:
            typer.echo(str(problem))
        if not problems:
            typer.echo(f"all templates in {folder} are fine")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise TemplateError(f"{problems[0]}{more}")


@campaigns_app.command("preview")
def preview_command(
    campaign_id: int = typer.Argument(..., help="Campaign id."),
    subscriber: str = typer.Option(None, "--subscriber", help="Personalize for this address."),
    out: Path = typer.Option(None, "--out", help="Where to write the HTML "
                             "(default campaign-ID-preview.html)."),
    as_json: bool = JSON,
) -> None:
    """Write the campaign's personalized HTML to a file and print its text version."""
    settings = context.settings()
    with context.database().session() as session:
        campaign = get_campaign(session, campaign_id)
        message = compile_for(session, campaign, settings)
        person = subscriber_for_preview(session, subscriber)
    personal = personalized_copy(message, person, settings, context.signer())
    out = out or Path(f"campaign-{campaign_id}-preview.html")
    out.write_text(personal.html, encoding="utf-8")
    size = len(personal.html.encode("utf-8"))
    if as_json:
        context.emit({"campaign_id": campaign_id, "to": person.email, "out": str(out),
                      "subject": personal.subject, "html_bytes": size, "text": personal.text,
                      "headers": personal.headers}, True)
        return
    sys.stderr.write(f"wrote {out} ({size / 1024:.1f} KB of HTML; Gmail clips at "
                     f"{GMAIL_CLIP_BYTES // 1024} KB) for {person.email}\n")
    typer.echo(f"Subject: {personal.subject}\n")
    typer.echo(personal.text, nl=False)


@campaigns_app.command("test")
def send_test_command(
    campaign_id: int = typer.Argument(..., help="Campaign id."),
    to: list[str] = typer.Option(..., "--to", help="Address to send a test copy to "
                                 "(repeat for several)."),
    as_json: bool = JSON,
) -> None:
    """Send a "[TEST]" copy through the configured transport; the campaign is untouched."""

    settings = context.settings()
    with context.database().session() as session:
        message, people = test_copy(session, get_campaign(session, campaign_id), to, settings)
    transport = get_transport(settings)
    try:
        results = send_one_off(message, people, settings, context.signer(),
                               transport=transport)
    finally:
        transport.close()
    rows = [{"to": r.recipient.email, "accepted": r.accepted, "id": r.provider_message_id,
             "error": r.error} for r in results]
    if as_json:
        context.emit({"campaign_id": campaign_id, "transport": transport.name,
                      "subject": message.subject, "results": rows}, True)
    else:
        for row in rows:
            status = "sent" if row["accepted"] else f"refused: {row['error']}"
            typer.echo(f"{row['to']}: {status} ({transport.name})")
    if refused(results):
        raise InvalidInput(f"the {transport.name} transport refused "
                           f"{', '.join(refused(results))}")
