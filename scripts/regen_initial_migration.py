"""Regenerate ``0001_initial`` from the models (allowed only until the first release ships:
after that, every schema change is a new revision made with ``alembic revision --autogenerate``).

Usage: .venv/bin/python scripts/regen_initial_migration.py
"""

import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine

from mailer.storage.db import MIGRATIONS_DIR, alembic_config

versions = MIGRATIONS_DIR / "versions"
for old in versions.glob("0001_*.py"):
    old.unlink()
with tempfile.TemporaryDirectory() as tmp:
    url = f"sqlite:///{Path(tmp) / 'empty.db'}"
    create_engine(url).connect().close()
    config = alembic_config(create_engine(url))
    command.revision(config, message="initial schema", autogenerate=True, rev_id="0001")
made = next(versions.glob("0001_*.py"))
# Autogenerate renders JSONB's default argument unqualified.
made.write_text(made.read_text().replace("astext_type=Text()", "astext_type=sa.Text()"))
made.rename(versions / "0001_initial.py")
print(f"wrote {versions / '0001_initial.py'}")
