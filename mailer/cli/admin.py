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
