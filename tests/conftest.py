"""Shared fixtures.

Every test that takes ``db`` (or ``settings``) runs once on SQLite and, when
``MAILER_TEST_POSTGRES_URL`` is set, once more on PostgreSQL. Each pytest session gets its own
PostgreSQL database (created from the URL's server, dropped at the end), so concurrent runs do
not collide. Tests that only make sense on one backend use
``@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import uuid
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mailer.cli import context as cli_context
from mailer.schema import metadata
from mailer.settings import get_settings
from mailer.storage.db import Database, make_engine, upgrade

ROOT = Path(__file__).resolve().parent.parent
SEED_ISSUE = ROOT / "mailer" / "data" / "issue_human_trafficking.txt"
SEED_RELEASE = ROOT / "mailer" / "data" / "release_heitkamp_2014-05-09.txt"
#: Three real congressional RSS feeds (MIT-licensed, see LICENSE-statement.txt there).
FEEDS_DIR = ROOT / "tests" / "fixtures" / "feeds"
ARTIFACTS = ROOT / "test-artifacts"
POSTGRES_URL = os.environ.get("MAILER_TEST_POSTGRES_URL")

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]


def pytest_configure(config):
    config.addinivalue_line("markers", "postgresql: runs against PostgreSQL")


def pytest_collection_modifyitems(config, items):
    if POSTGRES_URL:
        return
    skip = pytest.mark.skip(reason="MAILER_TEST_POSTGRES_URL not set")
    for item in items:
        if "postgresql" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once is much faster)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_session_url():
    """A fresh PostgreSQL database for this pytest session, migrated once."""
    if not POSTGRES_URL:
        pytest.skip("MAILER_TEST_POSTGRES_URL not set")
    base = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    name = f"mailer_t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
        ), {"n": name})
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def database_url(backend, tmp_path, request) -> str:
    if backend == "sqlite":
        path = tmp_path / "mailer.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_session_url")
    _truncate_all(url)
    return url


def _truncate_all(url: str) -> None:
    engine = make_engine(url)
    tables = [t.name for t in metadata.sorted_tables]
    with engine.begin() as conn:
        existing = {r[0] for r in conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))}
        tables += [t for t in existing if t.startswith("apscheduler")]
        conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables if t in existing)
                          + " RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def settings(database_url, tmp_path, monkeypatch):
    """Settings for a test: its own database, outbox and working directory."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("MAILER_") and key != "MAILER_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("MAILER_DATABASE_URL", database_url)
    monkeypatch.setenv("MAILER_OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.setenv("MAILER_SECRET_KEY", "test-secret-key")
    monkeypatch.setenv("MAILER_POSTAL_ADDRESS",
                       "123 Hart Senate Office Building, Washington, DC 20510")
    monkeypatch.setenv("MAILER_PUBLIC_URL", "https://news.senator.example.gov")
    monkeypatch.setenv("MAILER_TEMPLATES_DIR", str(ROOT / "templates"))
    cli_context.reset()
    yield get_settings()
    cli_context.reset()


@pytest.fixture
def db(settings) -> Database:
    """The test's database, schema in place."""
    return cli_context.database()


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


@pytest.fixture
def cli(settings):
    """Run ``mailer ARGS…`` in-process, the way the console script does."""
    from mailer.cli import main

    def run(*args: str, input: str | None = None) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        old_stdin = sys.stdin
        if input is not None:
            sys.stdin = io.StringIO(input)
        code = 0
        try:
            with redirect_stdout(out), redirect_stderr(err):
                main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdin = old_stdin
        return CliResult(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def standin():
    """A SendGrid v3 stand-in on loopback (tests/support/sendgrid_standin.py), key SG.test-key."""
    from tests.support.sendgrid_standin import SendGridStandIn

    with SendGridStandIn(api_key="SG.test-key", max_seconds=120) as server:
        yield server


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
