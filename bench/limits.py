"""Benchmark: one shared rate-limit hit (``mailer.storage.limits``), beside a bare round trip.

    .venv/bin/python bench/limits.py [--hits 2000] [--database-url URL]

Every signup and every login counts a hit in the database so that several web processes
share the limit. This times ``SharedLimit.hit`` over a spread of keys (as many networks
signing up) and, in the same run on the same database, the least any database call costs: a
session that runs ``SELECT 1``. Both are medians of five rounds. Without ``--database-url``
it uses a fresh SQLite file; a PostgreSQL URL has its public schema reset.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _data import fresh_database  # noqa: E402

from mailer.storage.limits import SharedLimit  # noqa: E402


def per_call(action, count: int) -> float:
    """Median seconds per call over five rounds of ``count`` calls."""
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for i in range(count):
            action(i)
        rounds.append((time.perf_counter() - started) / count)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=2000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{folder}/bench.db"
        db = fresh_database(url)
        limit = SharedLimit(db, "bench", limit=10**9, window=600)

        def bare(_i: int) -> None:
            with db.session() as session:
                session.connection().exec_driver_sql("SELECT 1")

        hit = per_call(lambda i: limit.hit(f"10.{i % 250}.0.1"), args.hits)
        baseline = per_call(bare, args.hits)
        db.dispose()
    print(f"{db.dialect}: shared limit hit {hit * 1000:.2f} ms; "
          f"baseline (session + SELECT 1) {baseline * 1000:.2f} ms; "
          f"{args.hits} calls a round, median of 5")


if __name__ == "__main__":
    main()
