"""The dashboard's releases list and its search on many releases.

    .venv/bin/python bench/releases.py [--releases 20000] [--database-url URL]

Builds ``--releases`` releases (about 3 KB of body text each, a date each, a third tagged
with a topic) and times ``mailer.ingest.service.list_releases`` as the releases page calls it
(25 to a page, median of five after a warm-up):

- the first page, no search; the topic filter;
- a search for a rare word and for a common one, which reads at most the newest
  ``SEARCH_WINDOW`` releases;
- baseline, in the same run: the same searches with no window (``SEARCH_WINDOW`` past the
  number of releases), the scan of every body the window bounds.

An office has a few thousand releases; the default builds more than the window, so the
bound shows. Run it on SQLite (the default) and on PostgreSQL
(``--database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _data import fresh_database  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from mailer.ingest import service  # noqa: E402
from mailer.ingest.models import Release, ReleaseTopic  # noqa: E402
from subscribers.models import Topic  # noqa: E402

WORDS = ("senator farmers county bill grant veterans clinic rural broadband water highway "
         "school hospital funding support families north dakota office announced today "
         "program federal state local community").split()
PAGE = 25


def build(db, count: int) -> None:
    rng = random.Random(7)
    first = date(2026, 12, 1)
    with db.session() as session:
        topic = Topic(slug="agriculture", name="Agriculture", description="")
        session.add(topic)
        session.flush()
        topic_id = topic.id
    for start in range(0, count, 1000):
        rows = []
        for i in range(start, min(count, start + 1000)):
            words = [WORDS[rng.randrange(len(WORDS))] for _ in range(450)]
            if i == min(count - 1, 1000):
                words[200] = "xylophone"  # the rare word: one release, well inside the window
            rows.append({"id": i + 1, "title": f"Release {i} about " + " ".join(words[:6]),
                         "date": first - timedelta(days=i // 3), "body": " ".join(words),
                         "source": "bench", "content_hash": f"bench-{i}"})
        with db.session() as session:
            session.execute(insert(Release), rows)
            session.execute(insert(ReleaseTopic), [
                {"release_id": r["id"], "topic_id": topic_id, "score": 1.0, "matched": {},
                 "origin": "auto"} for r in rows if r["id"] % 3 == 0])
    if db.dialect == "postgresql":  # what autovacuum does soon after a bulk load
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "ANALYZE releases; ANALYZE release_topics")


def timed(db, **query) -> float:
    def once() -> int:
        with db.session() as session:
            return len(service.list_releases(session, limit=PAGE + 1, **query))

    once()  # warm up
    times = []
    for _ in range(5):
        started = time.perf_counter()
        once()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=20000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-releases-"))
    url = args.database_url or f"sqlite:///{folder / 'bench.db'}"
    db = fresh_database(url)
    started = time.perf_counter()
    build(db, args.releases)
    print(f"{db.dialect}: {args.releases:,} releases built in "
          f"{time.perf_counter() - started:.1f} s; search window {service.SEARCH_WINDOW:,}")
    window = service.SEARCH_WINDOW
    cases = [("first page", {}), ("topic filter", {"topic": "agriculture"}),
             ("search, rare word", {"text": "xylophone"}),
             ("search, common words", {"text": "rural broadband"}),
             ("search, no match", {"text": "zebra"})]
    print(f"{'what':<24} {'bounded':>10} {'no window (baseline)':>22}")
    for label, query in cases:
        bounded = timed(db, **query)
        service.SEARCH_WINDOW = args.releases + 1
        baseline = timed(db, **query) if "text" in query else bounded
        service.SEARCH_WINDOW = window
        print(f"{label:<24} {bounded:>9.4f}s {baseline:>21.4f}s")
    db.dispose()


if __name__ == "__main__":
    main()
