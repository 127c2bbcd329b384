"""Synthetic North Dakota constituents for the benchmarks (deterministic, no network)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

COUNTIES = [("Cass", "581"), ("Burleigh", "585"), ("Ward", "587"), ("Grand Forks", "582"),
            ("Stark", "586"), ("Williams", "588"), ("Stutsman", "584"), ("Morton", "585")]
FIRST = ["Ole", "Ingrid", "Mary", "Dale", "Karen", "Tom", "Linda", "James", "Brenda", "Steve",
         "Julie", "Curtis", "Anna", "Paul", "Deb", "Gary", "Ruth", "Mike", "Zoë", "Søren"]
LAST = ["Hanson", "Sørensen", "Lindqvist", "Peterson", "Olson", "Kjelstad", "Nygaard", "Moen",
        "Halvorson", "Sand", "Bakken", "Gustafson", "Thorson", "Erickson", "Schmidt", "Wold"]
TOPICS = ["human-trafficking", "agriculture", "veterans"]


def person(i: int, rng: random.Random) -> tuple[str, str, str, str, str, str]:
    county, prefix = COUNTIES[rng.randrange(len(COUNTIES))]
    first, last = FIRST[rng.randrange(len(FIRST))], LAST[rng.randrange(len(LAST))]
    topics = [t for t in TOPICS if rng.random() < (0.7 if t == TOPICS[0] else 0.2)]
    # Real addresses are nearly all ASCII even when names are not.
    email = f"{_ascii(first)}.{_ascii(last)}.{i}@example.org"
    return (email, f"{first} {last}", f"{prefix}{rng.randrange(100):02d}", county, "ND",
            ";".join(topics))


def _ascii(name: str) -> str:
    return name.lower().replace("ø", "o").replace("ë", "e")


def write_csv(path: Path, rows: int, seed: int = 5) -> Path:
    """A plain list of ``rows`` unique constituents (streamed to disk)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "zip", "county", "state", "topics"])
        for i in range(rows):
            writer.writerow(person(i, rng))
    return path


def fresh_database(url: str):
    """An empty, migrated database at ``url`` (a PostgreSQL URL has its public schema reset)."""
    from sqlalchemy import text

    from mailer.settings import Settings
    from mailer.storage.db import make_engine, open_database

    if url.startswith("postgresql"):
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    return open_database(Settings(database_url=url))
