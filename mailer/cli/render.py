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
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select

from mailer.campaigns.service import get_campaign
from mailer.cli import context
from mailer.cli.apps import campaigns_app, templates_app
from mailer.errors import InvalidInput, NotFound, TemplateError
from mailer.render import GMAIL_CLIP_BYTES, Personalizer, compile_campaign, personalize
from mailer.render.check import check_all
from mailer.transports.base import Batch, CompiledMessage, Recipient

JSON = typer.Option(False, "--json", help="Print one JSON document.")
#: Who a preview is addressed to when no --subscriber is given.
SAMPLE_EMAIL = "subscriber@example.com"
SAMPLE_NAME = "Sample Subscriber"


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
        message = compile_campaign(session, campaign, settings)
        recipient = _recipient_for(session, campaign.id, subscriber, required=True)
    personal = personalize(message, recipient)
    out = out or Path(f"campaign-{campaign_id}-preview.html")
    out.write_text(personal.html, encoding="utf-8")
    size = len(personal.html.encode("utf-8"))
    if as_json:
        context.emit({"campaign_id": campaign_id, "to": recipient.email, "out": str(out),
                      "subject": personal.subject, "html_bytes": size, "text": personal.text,
                      "headers": personal.headers}, True)
        return
    sys.stderr.write(f"wrote {out} ({size / 1024:.1f} KB of HTML; Gmail clips at "
                     f"{GMAIL_CLIP_BYTES // 1024} KB) for {recipient.email}\n")
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
    from mailer.transports import get_transport

    settings = context.settings()
    addresses = [_valid_address(a) for a in to]
    with context.database().session() as session:
        campaign = get_campaign(session, campaign_id)
        message = make_test_copy(compile_campaign(session, campaign, settings))
        recipients = [_recipient_for(session, campaign.id, a, required=False) for a in addresses]
    transport = get_transport(settings)
    try:
        results = transport.send(Batch(message, recipients))
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
    refused = [row["to"] for row in rows if not row["accepted"]]
    if refused:
        raise InvalidInput(f"the {transport.name} transport refused {', '.join(refused)}")


def make_test_copy(message: CompiledMessage) -> CompiledMessage:
    """The message with "[TEST]" in front of its subject and no campaign id (so neither the
    outbox file name, SendGrid's custom args nor any event ties it to the real send)."""
    return dataclasses.replace(message, subject=f"[TEST] {message.subject}", campaign_id=None,
                               categories=("test",))


def _recipient_for(session, campaign_id: int, email: str | None, *, required: bool
                   ) -> Recipient:
    """The subscriber with this address (their own name and tokens), or a sample recipient.

    Raises NotFound when ``required`` and no subscriber has the address.
    """
    from subscribers.models import Subscriber

    personalizer = Personalizer(context.settings(), context.signer(), campaign_id)
    if email is None:
        return personalizer.recipient(email=SAMPLE_EMAIL, name=SAMPLE_NAME, subscriber_id=None)
    row = session.scalar(select(Subscriber).where(func.lower(Subscriber.email)
                                                  == email.strip().lower()))
    if row is None:
        if required:
            raise NotFound(f"no subscriber with address {email}")
        return personalizer.recipient(email=email, name=None, subscriber_id=None)
    return personalizer.recipient(email=row.email, name=row.name, subscriber_id=row.id)


def _valid_address(address: str) -> str:
    """Raises InvalidInput for an address that cannot receive mail."""
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidInput(f"{address!r} is not a valid email address: {exc}") from None
