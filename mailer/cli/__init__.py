"""The ``mailer`` command. ``main()`` turns every expected failure into one line on stderr and a
non-zero exit; only a bug produces a traceback.

Exit statuses: 2 for a usage error (unknown command or option, a missing or malformed
argument, a bad setting), 130 when interrupted, otherwise the failure's own code (1 unless a
``MailerError`` says otherwise). A full disk is one line too ("disk full (…)")."""

from __future__ import annotations

import importlib
import logging
import sys

import typer
from sqlalchemy.exc import SQLAlchemyError

from mailer.cli.apps import app
from mailer.errors import MailerError
from mailer.storage import outage

# Each module registers its commands on the apps in mailer.cli.apps.
COMMAND_MODULES = (
    "mailer.cli.admin",
    "mailer.cli.releases",
    "mailer.cli.subscribers",
    "mailer.cli.campaigns",
    "mailer.cli.render",
    "mailer.cli.delivery",
    "mailer.cli.tracking",
    "mailer.cli.scheduling",
    "mailer.cli.web",
)
for _module in COMMAND_MODULES:
    importlib.import_module(_module)


def fail(message: str, code: int = 1) -> None:
    sys.stderr.write(f"mailer: error: {message}\n")
    sys.exit(code)


def one_line(message: str) -> str:
    return " ".join(message.split())


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    try:
        # Without standalone mode click returns typer.Exit's code instead of exiting.
        code = app(args=argv, prog_name="mailer", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:
        # typer >= 0.29 raises its own click exceptions (UsageError, BadParameter, NoSuchOption…);
        # click would print usage plus a hint over three lines: one line names the problem.
        fail(one_line(exc.format_message()), exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        fail("interrupted", 130)
    except MailerError as exc:
        fail(one_line(str(exc)) or type(exc).__name__, exc.exit_code)
    except (SQLAlchemyError, OSError) as exc:
        fail(_failure_line(exc))


def _failure_line(exc: SQLAlchemyError | OSError) -> str:
    """One line for a database or file error. A full disk says so, and that the step which
    hit it was rolled back (every write is one transaction), so freeing space and running the
    command again is safe."""
    if isinstance(exc, OSError):
        where = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
    else:
        where = outage.reason(exc)
    if outage.is_disk_full(exc):
        return (f"disk full ({where}); the write in progress was rolled back: free space "
                "and run the command again")
    return f"database error: {where}" if isinstance(exc, SQLAlchemyError) else where
