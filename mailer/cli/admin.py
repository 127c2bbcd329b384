"""``mailer init``, ``mailer doctor`` and ``mailer demo``."""

from __future__ import annotations

import typer

from mailer.cli import context
from mailer.cli.apps import app
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
    from mailer.doctor import FAIL, run_checks

    findings = run_checks(context.settings())
    context.emit([f.as_dict() for f in findings], as_json, _print_findings)
    if any(f.level == FAIL for f in findings):
        raise typer.Exit(1)


def _print_findings(console, findings) -> None:
    marks = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FIX[/]"}
    for finding in findings:
        console.print(f"{marks[finding['level']]:>5}  {finding['check']}: {finding['message']}",
                      highlight=False)
