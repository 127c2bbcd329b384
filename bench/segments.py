"""Benchmark: ``mailer segments count`` on 1,000,000 subscribers, beside ``SELECT count(*)``.

    .venv/bin/python bench/segments.py [--rows 1000000] [--database-url URL]

Builds the list inside the database (a recursive CTE on SQLite, generate_series on
PostgreSQL: seconds, not minutes), with topics, 1 % unsubscribed, 0.5 % bounced and 0.5 % of
active addresses on the suppression list, then gathers planner statistics (ANALYZE; on
PostgreSQL VACUUM ANALYZE, as autovacuum would have by then). Then times each query's
audience count (median of three after a warm-up) and checks the answer by evaluating the same
condition in Python over every row, so the figure is both fast and exact.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["MAILER_TIMEZONE"] = "UTC"  # "joined" dates are then UTC days, as the check assumes

from _data import fresh_database  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

COUNTIES = ["Cass", "Burleigh", "Ward", "Grand Forks", "Stark", "Williams", "Stutsman", "Morton"]
PREFIXES = ["581", "585", "587", "582", "586", "588", "584", "585"]
QUERIES = [
    'county in ("Cass", "Ward") and not zip ~ "581*"',
    'topic = "human-trafficking"',
    'topic = "human-trafficking" and (county = "Cass" or zip ~ "581*")',
    'county = "Stark" and frequency = "weekly"',
    'state = "ND"',
    "joined >= 2025-06-01",
]

# Constant SQL (no values spliced in): row i's attributes are functions of i.
_SERIES = {
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows) ",
    "postgresql": "WITH n(i) AS (SELECT generate_series(1, :rows)) ",
}
# A unique stand-in hash per suppressed row; its email_key is copied from the subscriber,
# whose key is simply its number (unique too, which is all the queries rely on).
_HASH = {"sqlite": "printf('%064x', id)", "postgresql": "lpad(to_hex(id), 64, '0')"}
_CONCAT = {"sqlite": "'user' || i || '@example.org'",
           "postgresql": "'user' || i::text || '@example.org'"}
_ZIP = {"sqlite": "printf('%s%02d', {prefix}, (i * 7) % 100)",
        "postgresql": "{prefix} || lpad(((i * 7) % 100)::text, 2, '0')"}
# SQLAlchemy stores SQLite datetimes as "YYYY-MM-DD HH:MM:SS.ffffff"; match it exactly.
_TIME = {"sqlite": "strftime('%Y-%m-%d %H:%M:%f000', '2024-01-01', '+' || (i % 700) || ' days')",
         "postgresql": "timestamptz '2024-01-01 00:00:00+00' + (i % 700) * interval '1 day'"}


def build(db, rows: int) -> None:
    dialect = db.dialect
    # Counties and ZIP prefixes are bound parameters too (:c0…, :p0…).
    county = "CASE i % 8 " + " ".join(f"WHEN {k} THEN :c{k}" for k in range(8)) + " END"
    prefix = "CASE i % 8 " + " ".join(f"WHEN {k} THEN :p{k}" for k in range(8)) + " END"
    names = {f"c{k}": c for k, c in enumerate(COUNTIES)} | {
        f"p{k}": p for k, p in enumerate(PREFIXES)}
    status = ("CASE WHEN i % 100 = 0 THEN 'unsubscribed' WHEN i % 200 = 1 THEN 'bounced' "
              "ELSE 'active' END")
    frequency = "CASE i % 5 WHEN 0 THEN 'weekly' WHEN 1 THEN 'daily' ELSE 'immediate' END"
    created = _TIME[dialect]
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO topics (id, slug, name, description, terms, created_at) VALUES "
            "(1, 'human-trafficking', 'Human Trafficking', '', '{}', CURRENT_TIMESTAMP), "
            "(2, 'agriculture', 'Agriculture', '', '{}', CURRENT_TIMESTAMP), "
            "(3, 'veterans', 'Veterans', '', '{}', CURRENT_TIMESTAMP)"))
        conn.execute(text(
            _SERIES[dialect] +
            "INSERT INTO subscribers (id, email, email_key, name, zip, county, state, frequency,"
            " status, consent_source, created_at, updated_at) "
            f"SELECT i, {_CONCAT[dialect]}, i, 'Constituent', "
            f"{_ZIP[dialect].format(prefix=prefix)}, {county}, 'ND', {frequency}, {status}, "
            f"'bench', {created}, {created} FROM n"), {"rows": rows, **names})
        # 70 % follow human-trafficking, 20 % agriculture, 20 % veterans.
        conn.execute(text(
            "INSERT INTO subscriber_topics (subscriber_id, topic_id) "
            "SELECT id, 1 FROM subscribers WHERE id % 10 < 7 UNION ALL "
            "SELECT id, 2 FROM subscribers WHERE id % 5 = 2 UNION ALL "
            "SELECT id, 3 FROM subscribers WHERE id % 5 = 3"))
        conn.execute(text(
            "INSERT INTO suppressions (email_hash, email_key, reason, created_at) "
            f"SELECT {_HASH[dialect]}, email_key, 'complained', CURRENT_TIMESTAMP FROM subscribers "
            "WHERE id % 200 = 7"))
        conn.execute(text("ANALYZE"))
    if dialect == "postgresql":
        # What autovacuum would have done on a real installation by the time anyone counts:
        # without the visibility map PostgreSQL cannot use index-only scans at all.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    fn()  # warm-up
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def brute_force(db, query: str) -> int:
    """The same audience evaluated in Python over every row (slow, independent of SQL)."""
    from subscribers.models import Subscriber, SubscriberTopic, Suppression
    from subscribers.query import parse_query

    tree = parse_query(query)
    with db.session() as session:
        suppressed = set(session.scalars(select(Suppression.email_key)))
        topics: dict[int, set[str]] = {}
        for sid, tid in session.execute(select(SubscriberTopic.subscriber_id,
                                               SubscriberTopic.topic_id)):
            topics.setdefault(sid, set()).add({1: "human-trafficking", 2: "agriculture",
                                              3: "veterans"}[tid])
        rows = session.execute(select(Subscriber.id, Subscriber.county, Subscriber.zip,
                                      Subscriber.state, Subscriber.frequency,
                                      Subscriber.status, Subscriber.email_key,
                                      Subscriber.created_at))
        return sum(1 for r in rows if r.status == "active" and r.email_key not in suppressed
                   and _matches(tree, r, topics.get(r.id, set())))


def _matches(node, row, followed) -> bool:
    from fnmatch import fnmatchcase

    from subscribers.query import And, In, Not, Or

    if isinstance(node, And):
        return all(_matches(o, row, followed) for o in node.operands)
    if isinstance(node, Or):
        return any(_matches(o, row, followed) for o in node.operands)
    if isinstance(node, Not):
        return not _matches(node.operand, row, followed)
    values = [v.text for v in (node.values if isinstance(node, In) else [node.value])]
    if node.field == "topic":
        return bool(followed & set(values))
    if node.field == "joined":
        return row.created_at.date().isoformat() >= values[0]  # only ">=" is benchmarked
    actual = getattr(row, node.field)
    if actual is None:
        return False
    if getattr(node, "op", "=") == "~":
        return fnmatchcase(actual.lower(), values[0].lower())
    return actual in values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None,
                        help="an empty PostgreSQL database (its public schema is reset)")
    parser.add_argument("--no-check", action="store_true", help="skip the brute-force check")
    args = parser.parse_args()
    from subscribers import segments

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'segments.db'}"
        db = fresh_database(url)
        started = time.perf_counter()
        build(db, args.rows)
        print(f"built {args.rows:,} subscribers on {db.dialect} in "
              f"{time.perf_counter() - started:.1f}s (then "
              f"{'VACUUM ANALYZE' if db.dialect == 'postgresql' else 'ANALYZE'})",
              file=sys.stderr)

        def raw_count():
            with db.session() as session:
                return session.scalar(select(func.count()).select_from(text("subscribers")))

        baseline, total = timed(raw_count)
        print(f"segments count on {total:,} subscribers ({db.dialect})   [target <= 0.5 s]")
        print(f"{'query':70}{'seconds':>9}{'count':>10}  exact")
        print(f"{'baseline: SELECT count(*) FROM subscribers':70}{baseline:>9.3f}{total:>10,}")
        for query in QUERIES:
            def count(query=query):
                with db.session() as session:
                    return segments.count(session, query=query)
            seconds, n = timed(count)
            check = "-" if args.no_check else ("yes" if brute_force(db, query) == n else "NO")
            print(f"{query:70}{seconds:>9.3f}{n:>10,}  {check}")
        db.dispose()


if __name__ == "__main__":
    main()
