"""Benchmark: ``mailer subscribers import`` at scale, beside a naive baseline.

    .venv/bin/python bench/import_subscribers.py [--rows 1000000] [--database-url URL]

Prints, for a generated plain-list CSV: the bulk import of N rows (first run and an idempotent
re-run), peak memory (ru_maxrss of a child process) at 100k and N rows to show it stays flat,
and the naive baseline (one ORM object and a lookup per row) timed on 20k rows and
extrapolated. Each measurement runs in its own process on a fresh database (SQLite in a temp
folder unless --database-url names an empty PostgreSQL database, which is then reset).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _database(url: str):

    from _data import fresh_database

    from mailer.schema import metadata

    db = fresh_database(url)
    from subscribers.models import Topic

    with db.session() as session:
        for slug in ("human-trafficking", "agriculture", "veterans"):
            session.add(Topic(slug=slug, name=slug.replace("-", " ").title()))
    assert metadata is not None
    return db


def child(mode: str, csv_path: str, url: str) -> None:
    """Runs in a subprocess; prints one JSON line with its figures."""
    db = _database(url)
    started = time.perf_counter()
    if mode == "bulk":
        from subscribers.importer import import_subscribers

        report = import_subscribers(db, csv_path)
        first = time.perf_counter() - started
        again_started = time.perf_counter()
        again = import_subscribers(db, csv_path)
        figures = {"seconds": first, "rerun_seconds": time.perf_counter() - again_started,
                   "created": report.created, "rerun_unchanged": again.unchanged,
                   "rerun_created": again.created, "rerun_updated": again.updated}
    else:
        figures = {"seconds": naive_import(db, csv_path)}
    usage, readers = (resource.getrusage(who) for who in
                      (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    figures["max_rss_mb"] = usage.ru_maxrss / 1024
    # Big files are read in a forked reader process: its peak and CPU count too.
    figures["reader_max_rss_mb"] = readers.ru_maxrss / 1024
    figures["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    figures["reader_cpu_seconds"] = readers.ru_utime + readers.ru_stime
    print(json.dumps(figures))


def naive_import(db, csv_path: str) -> float:
    """The obvious implementation: a lookup and an ORM object per row, one transaction."""
    import csv

    from sqlalchemy import select

    from subscribers.addresses import normalize_email
    from subscribers.models import Subscriber, SubscriberTopic, Topic

    started = time.perf_counter()
    with db.session() as session, open(csv_path, encoding="utf-8", newline="") as handle:
        topics = dict(session.execute(select(Topic.slug, Topic.id)).all())
        for row in csv.DictReader(handle):
            email = normalize_email(row["email"])
            found = session.scalar(select(Subscriber).where(Subscriber.email == email))
            if found is None:
                found = Subscriber(email=email, name=row["name"], zip=row["zip"],
                                   county=row["county"], state=row["state"])
                session.add(found)
                session.flush()
            for slug in filter(None, row["topics"].split(";")):
                session.add(SubscriberTopic(subscriber_id=found.id, topic_id=topics[slug]))
            session.flush()
    return time.perf_counter() - started


def run_child(mode: str, csv_path: Path, url: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(csv_path), url],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"benchmark child failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    from _data import write_csv

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)

        def url(name: str) -> str:
            return args.database_url or f"sqlite:///{tmp_path / name}"

        small_rows = min(100_000, args.rows)
        results = {}
        for label, rows, mode in [("bulk", small_rows, "bulk"), ("bulk", args.rows, "bulk"),
                                  ("naive", args.baseline_rows, "naive")]:
            if (label, rows) in results:
                continue
            path = write_csv(tmp_path / f"list_{rows}.csv", rows)
            results[(label, rows)] = run_child(mode, path, url(f"{label}_{rows}.db"))
            print(f"  measured {label} import of {rows:,} rows", file=sys.stderr)
    big, small = results[("bulk", args.rows)], results[("bulk", small_rows)]
    naive = results[("naive", args.baseline_rows)]
    naive_total = naive["seconds"] * args.rows / args.baseline_rows
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(f"subscriber import, {backend}, cpu count {os.cpu_count()}, "
          f"load average now {os.getloadavg()[0]:.2f}")
    print(f"{'':34}{'this import':>16}{'naive ORM per row':>22}")
    print(f"{'import ' + format(args.rows, ',') + ' rows':34}{big['seconds']:>15.1f}s"
          f"{naive_total:>17.0f}s (est.)  [target <= 30 s]")
    print(f"{'rows per second':34}{args.rows / big['seconds']:>16,.0f}"
          f"{args.baseline_rows / naive['seconds']:>22,.0f}")
    print(f"{'re-import (idempotent), seconds':34}{big['rerun_seconds']:>15.1f}s"
          f"{'':>22}  created={big['rerun_created']} updated={big['rerun_updated']} "
          f"unchanged={big['rerun_unchanged']:,}")
    print(f"{'CPU (import + re-import), writer':34}{big['cpu_seconds']:>15.1f}s")
    print(f"{'CPU (import + re-import), reader':34}{big['reader_cpu_seconds']:>15.1f}s")
    print(f"{'peak RSS, ' + format(small_rows, ',') + ' rows':34}{small['max_rss_mb']:>14.0f}MB"
          f"  (reader process {small['reader_max_rss_mb']:.0f} MB)")
    print(f"{'peak RSS, ' + format(args.rows, ',') + ' rows':34}{big['max_rss_mb']:>14.0f}MB"
          f"{naive['max_rss_mb']:>20.0f}MB ({args.baseline_rows:,} rows)"
          f"  (reader process {big['reader_max_rss_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
