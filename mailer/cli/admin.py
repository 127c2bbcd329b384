"""``mailer init``, ``mailer doctor`` and ``mailer demo``."""

from __future__ import annotations

import typer
from rich.table import Table

from mailer.cli import context
from mailer.cli.apps import app
from mailer.demo import AUDIENCE, run_demo
from mailer.doctor import FAIL, run_checks
from mailer.storage.db import current_revision, head_revision, make_engine, upgrade


@app.command("init")
def init_command() -> None:
    """Create the database, or upgrade it to the newest schema."""
    settings = context.settings()
    engine = make_engine(settings.database_url)
    try:
        applied = upgrade(engine)
        revision = current_revision(engine)
    finally:
        engine.dispose()
    word = "upgraded" if applied else "already up to date"
    typer.echo(f"database {word} (schema {revision}, newest {head_revision()})")


@app.command("doctor")
def doctor_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Check the configuration and say what to fix. Exits 1 when anything must be fixed."""

    findings = run_checks(context.settings())
    context.emit([f.as_dict() for f in findings], as_json, _print_findings)
    if any(f.level == FAIL for f in findings):
        raise typer.Exit(1)


def _print_findings(console, findings) -> None:
    marks = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FIX[/]"}
    for finding in findings:
        console.print(f"{marks[finding['level']]:>5}  {finding['check']}: {finding['message']}",
                      highlight=False)


@app.command("demo")
def demo_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Run the whole job on bundled sample data (outbox only), then print the delivery report."""

    settings = context.settings()
    result = run_demo(context.database(), settings)

    data = {"campaign": result.status, "release_id": result.release_id, "audience": AUDIENCE,
            "subscribers": result.subscribers, "outbox": str(settings.outbox_dir.resolve())}
    context.emit(data, as_json, _print_demo)


def _print_demo(console, data) -> None:
    subs = data["subscribers"]
    console.print(f"Imported the sample release (id {data['release_id']}) and subscribers:"
                  f" {subs.get('created', 0)} new, {subs.get('updated', 0)} updated,"
                  f" {subs.get('skipped', 0)} skipped.")
    console.print(f"Audience: {data['audience']} (subscribers who take each release as it"
                  " comes; daily and weekly ones get it in their digest).", highlight=False)
    campaign = data["campaign"]
    table = Table(title=f"Campaign {campaign['id']}: {campaign['status']}")
    table.add_column("delivery status")
    table.add_column("count", justify="right")
    for name, count in campaign["counts"].items():
        if count or name in ("recipients", "accepted", "failed"):
            # The outbox has no provider to accept anything: the rows were written (as the
            # report and `campaigns status` say).
            table.add_row("written" if name == "accepted" else name, str(count))
    console.print(table)
    console.print(f"Messages are in {data['outbox']}/ (one .eml per recipient).")
