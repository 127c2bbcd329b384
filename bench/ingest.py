"""Release import costs, each next to a baseline.

    .venv/bin/python bench/ingest.py [--releases 2000] [--topics 20]

* text parser: ``parse_text`` on the seed release, next to the bare minimum (splitting the
  text into paragraphs);
* feed parser: ``parse_feed`` on the three fixture feeds, next to ``feedparser.parse`` alone
  (the clean-up, dateline and date fallbacks on top of it);
* tagging: scoring N releases against T topics tokenizing each release once (what
  ``tag_release`` does) next to tokenizing it again for every topic;
* storing: ``store_items`` of N distinct releases into a fresh SQLite file (dedupe lookups,
  tagging, inserts), then the same N again (all duplicates: what a re-import costs).

Figures are CPU seconds of this process (best of three), not wall time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import feedparser  # noqa: E402

from mailer.ingest.models import Release, Topic  # noqa: E402
from mailer.ingest.parsed import ParsedRelease  # noqa: E402
from mailer.ingest.rss import parse_feed  # noqa: E402
from mailer.ingest.service import store_items  # noqa: E402
from mailer.ingest.text import parse_text  # noqa: E402
from mailer.ingest.topics import parse_issue_page, score_release, tokens  # noqa: E402
from mailer.storage.db import Database, make_engine, upgrade  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEED = (ROOT / "mailer" / "data" / "release_heitkamp_2014-05-09.txt").read_text("utf-8")
ISSUE = (ROOT / "mailer" / "data" / "issue_human_trafficking.txt").read_text("utf-8")
FEEDS = [(ROOT.parent / "shared" / "fixtures" / "feeds" / n).read_bytes()
         for n in ("culberson_rss.xml", "richard_burr.xml", "ruiz_rss.xml")]


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.process_time()
        fn()
        times.append(time.process_time() - started)
    return min(times)


def row(name: str, ours: float, base: float, unit: str) -> None:
    ratio = ours / base if base else float("inf")
    print(f"{name:<34} {ours:>10.4f} {base:>10.4f} {ratio:>8.1f}×  {unit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=2000)
    parser.add_argument("--topics", type=int, default=20)
    args = parser.parse_args()
    n = args.releases
    print(f"{'':<34} {'ours':>10} {'baseline':>10} {'ratio':>9}")

    ours = best(lambda: [parse_text(SEED, "s") for _ in range(n)])
    base = best(lambda: [[p.strip() for p in SEED.split("\n\n")] for _ in range(n)])
    row(f"parse seed text ×{n}", ours, base, "s (baseline: split paragraphs)")

    ours = best(lambda: [parse_feed(f, "f") for f in FEEDS for _ in range(20)])
    base = best(lambda: [feedparser.parse(f) for f in FEEDS for _ in range(20)])
    row("parse 3 fixture feeds ×20", ours, base, "s (baseline: feedparser alone)")

    draft = parse_issue_page(ISSUE, "issue")
    topics = [Topic(slug=f"t{i}", name=draft.name, terms=dict(draft.terms))
              for i in range(args.topics)]
    releases = [Release(title=f"Release {i}", subtitle=None, body=SEED) for i in range(200)]
    ours = best(lambda: _score_once(releases, topics))
    base = best(lambda: [score_release(r, t) for r in releases for t in topics])
    row(f"score 200 releases × {args.topics} topics", ours, base,
        "s (baseline: tokenize per topic)")

    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/bench.db")
        upgrade(engine)
        db = Database(engine)
        items = [_item(i) for i in range(n)]
        started = time.process_time()
        with db.session() as session:
            store_items(session, items)
        first = time.process_time() - started
        started = time.process_time()
        with db.session() as session:
            report = store_items(session, [_item(i) for i in range(n)])
        again = time.process_time() - started
        assert not report.created and report.unchanged == n
        row(f"store {n} new releases (SQLite)", first, again,
            "s (baseline: re-import, all dupes)")
        print(f"{'':<34} {first / n * 1000:>10.3f} ms per new release, "
              f"{again / n * 1000:.3f} ms per duplicate")
        db.dispose()


def _score_once(releases, topics) -> None:
    for release in releases:
        words = tokens(release.title), tokens(release.body)
        for topic in topics:
            score_release(release, topic, words)


def _item(i: int) -> ParsedRelease:
    release = parse_text(SEED, f"bench-{i}")
    release.title = f"{release.title} ({i})"
    release.paragraphs = [*release.paragraphs, f"Release number {i}."]
    return release


if __name__ == "__main__":
    main()
