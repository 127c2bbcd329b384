"""Digest planning at scale: who gets which releases this week, next to a naive per-person plan.

    .venv/bin/python bench/digests.py [--subscribers 200000] [--releases 15] [--sample 5000]

Builds a SQLite file of weekly subscribers following 1-3 of 12 topics and a week of releases
tagged with 1-2 topics each, then times, side by side:

* plan: ``mailer.scheduling.digests.plan_groups`` — one streamed (subscriber, topic) query,
  grouped in Python by the set of releases each person gets;
* run: the whole ``run_digest`` — plan, claim the window and each planned subscriber's
  ``last_digest_at``, create one campaign per group with its members, and start each (the
  delivery engine draws every group into ``deliveries``);
* baseline: a naive plan asking the database for each subscriber's topics one by one (timed on
  ``--sample`` people and extrapolated).

Peak RSS is measured per phase (the kernel's high-water mark is reset before each).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select  # noqa: E402

from mailer.delivery.records import Delivery  # noqa: E402
from mailer.ingest.models import Release, ReleaseTopic, Topic  # noqa: E402
from mailer.scheduling import digest_plan, digests  # noqa: E402
from mailer.scheduling.models import Digest  # noqa: E402
from mailer.settings import Settings  # noqa: E402
from mailer.storage.base import utcnow  # noqa: E402
from mailer.storage.db import open_database  # noqa: E402
from subscribers.models import Subscriber, SubscriberTopic  # noqa: E402

TOPICS = ["agriculture", "veterans", "energy", "taxes", "health-care", "education",
          "human-trafficking", "tribal-affairs", "transportation", "defense", "trade", "water"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=200_000)
    parser.add_argument("--releases", type=int, default=15)
    parser.add_argument("--sample", type=int, default=5_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp}/bench.db",
                            secret_key="bench", outbox_dir=Path(tmp) / "outbox")
        db = open_database(settings)
        started = time.perf_counter()
        digest_id = seed(db, args.subscribers, args.releases)
        print(f"seeded {args.subscribers:,} weekly subscribers and {args.releases} releases "
              f"in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        rows = [measure("plan (plan_groups)", args.subscribers, lambda: plan(db, digest_id))]
        rows.append(measure("baseline: topics per person", args.sample,
                            lambda: naive_plan(db, digest_id, args.sample)))
        rows.append(measure("run (plan + campaigns + draw)", args.subscribers,
                            lambda: digests.run_digest(db, settings, digest_id)))
        with db.session() as session:
            drawn = session.scalar(select(func.count()).select_from(Delivery))
        report(rows, args, drawn)
        db.dispose()


def seed(db, people: int, releases: int) -> int:
    rng = random.Random(7)
    now = utcnow()
    with db.session() as session:
        topic_ids = []
        for slug in TOPICS:
            topic = Topic(slug=slug, name=slug.replace("-", " ").title())
            session.add(topic)
            session.flush()
            topic_ids.append(topic.id)
        for n in range(releases):
            release = Release(title=f"Release {n}", body="Body.", source="bench",
                              content_hash=f"{n:064x}",
                              created_at=now - timedelta(hours=rng.uniform(1, 160)))
            session.add(release)
            session.flush()
            for topic_id in rng.sample(topic_ids, rng.choice((1, 1, 2))):
                session.add(ReleaseTopic(release_id=release.id, topic_id=topic_id,
                                         origin="auto"))
        digest = Digest(name="Weekly digest", frequency="weekly", at="Fri 16:00",
                        last_run_at=now - timedelta(days=7))
        session.add(digest)
    chunk = 20_000
    joined = now - timedelta(days=90)  # long-standing subscribers: owed the whole week
    for first in range(0, people, chunk):
        ids = range(first + 1, min(first + chunk, people) + 1)
        emails = [f"constituent{i}@example.org" for i in ids]
        with db.session() as session:
            session.execute(insert(Subscriber), [
                {"id": i, "email": e, "frequency": "weekly",
                 "status": "active", "created_at": joined, "updated_at": joined}
                for i, e in zip(ids, emails, strict=True)])
            session.execute(insert(SubscriberTopic), [
                {"subscriber_id": i, "topic_id": t}
                for i in ids for t in rng.sample(topic_ids, rng.choice((1, 1, 2, 3)))])
    return digest.id


def plan(db, digest_id: int) -> str:
    with db.session() as session:
        digest = session.get(Digest, digest_id)
        releases = digest_plan.candidate_releases(session, digest, utcnow())
        plan = digest_plan.plan_groups(session, digest, releases)
    return f"{len(plan.groups)} groups, {plan.people:,} people"


def naive_plan(db, digest_id: int, sample: int) -> str:
    """Each person's topics in a query of their own (what an ORM loop with lazy loading does)."""
    with db.session() as session:
        digest = session.get(Digest, digest_id)
        releases = window_releases(session, digest)  # as if everyone were owed the window
        topics = digest_plan.release_topics(session, releases)
        groups: dict[tuple[int, ...], int] = {}
        people = session.scalars(select(Subscriber.id).where(
            Subscriber.frequency == "weekly", Subscriber.status == "active")
            .order_by(Subscriber.id).limit(sample)).all()
        for person in people:
            follows = set(session.scalars(select(Topic.slug).join(
                SubscriberTopic, SubscriberTopic.topic_id == Topic.id)
                .where(SubscriberTopic.subscriber_id == person)))
            chosen = tuple(r.id for r in releases if not topics[r.id] or topics[r.id] & follows)
            if chosen:
                groups[chosen] = groups.get(chosen, 0) + 1
    return f"{len(groups)} groups on the sample"


def window_releases(session, digest) -> list[Release]:
    return list(session.scalars(select(Release).where(Release.created_at > digest.last_run_at)
                                .order_by(Release.created_at, Release.id)))


def measure(name: str, people: int, action) -> tuple[str, int, float, float, str]:
    reset_peak_rss()
    started = time.perf_counter()
    note = action()
    seconds = time.perf_counter() - started
    if isinstance(note, dict):
        note = f"{len(note['campaigns'])} campaigns started"
    return name, people, seconds, peak_rss_mb(), note


def reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def report(rows, args, drawn: int) -> None:
    print(f"\ndigest of {args.releases} releases for {args.subscribers:,} weekly subscribers "
          f"(SQLite; {drawn:,} deliveries drawn)\n")
    print(f"{'method':32} {'people':>9} {'seconds':>9} {'people/s':>11} {'peak RSS':>9}  note")
    for name, people, seconds, rss, note in rows:
        rate = people / seconds if seconds else float("inf")
        print(f"{name:32} {people:>9,} {seconds:>9.2f} {rate:>11,.0f} {rss:>7.0f}MB  {note}")
    plan_rate = rows[0][1] / rows[0][2]
    naive_rate = rows[1][1] / rows[1][2]
    print(f"\nplan_groups is {plan_rate / naive_rate:,.0f}x the per-person baseline; the baseline "
          f"would need {args.subscribers / naive_rate:,.0f} s for everyone.")


if __name__ == "__main__":
    main()
