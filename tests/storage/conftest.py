"""Fixtures of the storage tests."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mailer.storage.db import make_engine
from tests.conftest import BACKENDS, POSTGRES_URL


@pytest.fixture(params=BACKENDS)
def empty_engine(request, tmp_path):
    """An engine on an empty database of each backend (nothing migrated yet)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
        yield engine
        engine.dispose()
        return
    base = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    name = f"mailer_m_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(base.set(database=name).render_as_string(hide_password=False))
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}"'))
    admin.dispose()
