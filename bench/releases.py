"""The dashboard's releases list and its search on many releases.

    .venv/bin/python bench/releases.py [--releases 20000] [--database-url URL]

Builds ``--releases`` releases (about 3 KB of body text each, a date each, a third tagged
with a topic) and times ``mailer.ingest.service.list_releases`` as the releases page calls it
(25 to a page, median of five after a warm-up):

- the first page, no search; the topic filter;
- a search for a rare word, common words and a word found nowhere, answered by the trigram
  index (migration 0017; ``mailer.ingest.search``);
- baselines, in the same run: the same searches as one plain query, the database's
  planner left to choose (SQLite's full-text table is not used then; PostgreSQL's planner
  may pick the GIN indexes by itself); as a scan of the bodies of the newest
  ``SEARCH_WINDOW`` releases (how words too short for the index are looked for); and as a
  scan of every body (no index, no window).

An office has a few thousand releases; the default builds more than the window. Run it on
SQLite (the default) and on PostgreSQL
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
from sqlalchemy import insert, text  # noqa: E402

from mailer.ingest import search, service  # noqa: E402
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
    if db.dialect == "postgresql":  # what autovacuum does soon after a bulk load (it also
        # empties the GIN indexes' pending lists, which a query reads row by row)
        with db.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("VACUUM ANALYZE releases")
            conn.exec_driver_sql("VACUUM ANALYZE release_topics")


def timed(db, scan: bool = False, **query) -> float:
    def once() -> int:
        with db.session() as session:
            if scan and db.dialect == "postgresql":  # no index may serve the words
                for plan in ("bitmapscan", "indexscan"):
                    session.execute(text(f"SET LOCAL enable_{plan} = off"))
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
          f"{time.perf_counter() - started:.1f} s; search window {search.SEARCH_WINDOW:,}")
    window, indexed = search.SEARCH_WINDOW, search.MIN_INDEXED
    cases = [("first page", {}), ("topic filter", {"topic": "agriculture"}),
             ("search, rare word", {"text": "xylophone"}),
             ("search, common words", {"text": "rural broadband"}),
             ("search, no match", {"text": "zebra"})]
    print(f"{'what':<24} {'as built':>9} {'one query':>10} {'window scan':>12} "
          f"{'full scan':>10}")
    for label, query in cases:
        figures = [timed(db, **query)]
        if "text" in query:
            search.MIN_INDEXED = 10**6  # every word as a short one: one plain query
            figures.append(timed(db, **query))
            figures.append(timed(db, scan=True, **query))
            search.SEARCH_WINDOW = args.releases + 1
            figures.append(timed(db, scan=True, **query))
            search.SEARCH_WINDOW, search.MIN_INDEXED = window, indexed
        widths = (8, 9, 11, 9)[:len(figures)]
        print(f"{label:<24} " + " ".join(f"{f:>{w}.4f}s"
                                         for f, w in zip(figures, widths, strict=True)))
    db.dispose()


if __name__ == "__main__":
    main()
