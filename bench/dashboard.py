"""Dashboard pages on a large list: 1,000,000 subscribers and 2,000,000 deliveries.

    .venv/bin/python bench/dashboard.py [--subscribers 1000000] [--database-url URL]

Builds the data inside the database (generate_series / a recursive CTE: seconds), two sent
campaigns of one delivery per subscriber each, with delivered, opened, clicked, bounced and
complained times spread over them, then serves ``create_app`` on uvicorn and times each
dashboard page as a logged-in admin (median of five after a warm-up, and after the work the
warm-up started in the background, such as a big report's refresh, has finished), next to:

- ``GET /healthz``: the floor (one ``SELECT 1`` through the same stack);
- the subscriber search as it was before the trigram index (``LIKE '%…%'`` over email and
  name, ordered by id, first page), run as SQL in the same run: the scan the index replaced.

Target (issue 15): every page ≤ 0.3 s. The pages that show an audience count show the stored
count on this list (MAILER_AUDIENCE_LIVE_LIMIT); the same pages counting on every view are
printed after, as the baseline. Run it on SQLite (the default) and on PostgreSQL
(``--database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench``): a figure from one
says nothing about the other.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _data import fresh_database  # noqa: E402
from segments import _CONCAT, _SERIES, _TIME, _ZIP, COUNTIES, PREFIXES  # noqa: E402
from sqlalchemy import text  # noqa: E402
from web import _serve  # noqa: E402

from mailer.campaigns.models import Campaign  # noqa: E402
from mailer.storage.base import utcnow  # noqa: E402
from subscribers.models import Segment  # noqa: E402

FIRST = ["Ole", "Ingrid", "Mary", "Dale", "Karen", "Tom", "Linda", "James", "Brenda", "Steve"]
LAST = ["Hanson", "Sørensen", "Lindqvist", "Peterson", "Olson", "Kjelstad", "Nygaard", "Moen"]
PAGES = [
    "/admin/campaigns", "/admin/campaigns/1",
    "/admin/subscribers", "/admin/subscribers?q=hanson", "/admin/subscribers?q=user4242",
    "/admin/subscribers?q=58102", "/admin/subscribers?q=zz", "/admin/subscribers?q=xqzw",
    "/admin/subscribers?status=bounced", "/admin/subscribers?county=Cass&topic=veterans",
    "/admin/subscribers/{middle}", "/admin/segments", "/admin/topics", "/admin/releases",
    # the pages added since: a saved segment (count, sample, campaigns using it), a draft on
    # it and a scheduled campaign (audience now / in digests), the schedule, the release page
    "/admin/segments/1", "/admin/campaigns/3", "/admin/campaigns/4", "/admin/campaigns/new",
    "/admin/schedule", "/admin/digests", "/admin/users", "/admin/tokens", "/admin/releases/1",
    "/admin/campaigns/1/report", "/admin/campaigns/1/report.html",
]
#: The pages that show who a send would reach: on this list, a stored count (recounted in the
#: background a minute after it was made), measured again below counting on every view.
COUNTING = ["/admin/segments/1", "/admin/campaigns/3", "/admin/campaigns/4", "/admin/schedule"]


def build(db, rows: int) -> None:
    dialect = db.dialect
    county, prefix = _case("i % 8", "c", 8), _case("i % 8", "p", 8)
    name = f"{_case('i % 10', 'f', len(FIRST))} || ' ' || {_case('(i / 10) % 8', 'l', len(LAST))}"
    names = ({f"c{k}": c for k, c in enumerate(COUNTIES)}
             | {f"p{k}": p for k, p in enumerate(PREFIXES)}
             | {f"f{k}": v for k, v in enumerate(FIRST)} | {f"l{k}": v for k, v in enumerate(LAST)})
    status = ("CASE WHEN i % 100 = 0 THEN 'unsubscribed' WHEN i % 200 = 1 THEN 'bounced' "
              "ELSE 'active' END")
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
            f"SELECT i, {_CONCAT[dialect]}, i, {name}, {_ZIP[dialect].format(prefix=prefix)}, "
            f"{county}, 'ND', 'immediate', {status}, 'bench', {created}, {created} FROM n"),
            {"rows": rows, **names})
        conn.execute(text(
            "INSERT INTO subscriber_topics (subscriber_id, topic_id) "
            "SELECT id, 1 FROM subscribers WHERE id % 10 < 7 UNION ALL "
            "SELECT id, 2 FROM subscribers WHERE id % 5 = 2 UNION ALL "
            "SELECT id, 3 FROM subscribers WHERE id % 5 = 3"))
        _campaigns(conn, dialect)
        conn.execute(text("ANALYZE"))
    if dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))


def _case(expression: str, key: str, count: int) -> str:
    """``CASE expression WHEN 0 THEN :key0 …``: row i's value picked from bound values."""
    return (f"CASE {expression} " + " ".join(f"WHEN {k} THEN :{key}{k}" for k in range(count))
            + " END")


def _campaigns(conn, dialect: str) -> None:
    now = "CURRENT_TIMESTAMP"
    conn.execute(text(
        "INSERT INTO releases (id, title, body, source, content_hash, created_at, updated_at) "
        f"VALUES (1, 'Heitkamp bill passes', 'Body.', 'bench', 'h1', {now}, {now})"))
    for cid in (1, 2):
        conn.execute(text(
            "INSERT INTO campaigns (id, kind, release_id, query, template, subject, status, "
            "created_by, recipients, created_at, updated_at, started_at, finished_at) VALUES "
            f"({cid}, 'release', 1, 'status = \"active\"', 'press_release', 'Campaign {cid}', "
            f"'sent', 'bench', (SELECT count(*) FROM subscribers), {now}, {now}, {now}, {now})"))
        conn.execute(text(
            "INSERT INTO deliveries (campaign_id, subscriber_id, email, status, attempts, "
            "created_at, sent_at, delivered_at, opened_at, clicked_at, bounced_at, "
            f"complained_at) SELECT {cid}, id, email, CASE WHEN id % 50 = 0 THEN 'bounced' "
            f"ELSE 'delivered' END, 1, {now}, {now}, CASE WHEN id % 50 <> 0 THEN {now} END, "
            f"{_every(3, now)}, {_every(11, now)}, {_every(50, now)}, {_every(997, now)} "
            "FROM subscribers"))


def _unsent(session) -> None:
    """A saved segment, a draft using it (campaign 3) and a campaign scheduled for tomorrow
    (campaign 4): the pages that count who a send would reach now."""
    session.add(Segment(id=1, name="Cass veterans",
                        query='topic = "veterans" and county = "Cass"'))
    session.flush()
    session.add(Campaign(id=3, kind="release", release_id=1, segment_id=1,
                         template="press_release", subject="Draft", created_by="bench"))
    session.add(Campaign(id=4, kind="release", release_id=1, query='topic = "agriculture"',
                         template="press_release", subject="Tomorrow", created_by="bench",
                         status="scheduled", approved_by="approver", approved_at=utcnow(),
                         scheduled_at=utcnow() + timedelta(days=1)))


def _every(modulo: int, value: str) -> str:
    return f"CASE WHEN id % {modulo} = 0 THEN {value} END"


def timed(client: httpx.Client, path: str, repeat: int = 5, first: list | None = None,
          db=None) -> float:
    """The median of ``repeat`` views after a warm-up view (its time appended to ``first``).
    With ``db``, the work the warm-up started after answering (a report snapshot's refresh,
    an audience recount: seconds on this list) is waited out first, so that no page is timed
    while it runs in the same server."""
    started = time.perf_counter()
    client.get(path)  # warm-up
    if first is not None:
        first.append(time.perf_counter() - started)
    if db is not None:
        settle(db)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return statistics.median(times)


def settle(db, timeout: float = 300) -> None:
    """Wait until no report snapshot or audience count is being refreshed."""
    time.sleep(0.3)  # a refresh claims its row just after the page is answered
    busy = text("SELECT (SELECT count(*) FROM report_snapshots WHERE refreshing_since IS NOT "
                "NULL) + (SELECT count(*) FROM audience_snapshots WHERE refreshing_since IS "
                "NOT NULL)")
    deadline = time.monotonic() + timeout
    with db.engine.connect() as conn:
        while conn.execute(busy).scalar() and time.monotonic() < deadline:
            conn.rollback()
            time.sleep(0.2)


def old_search_seconds(db, wanted: str, repeat: int = 3) -> float:
    """The search as the page ran it before the trigram index: a filtered scan by id."""
    like = f"%{wanted}%"
    sql = text("SELECT * FROM subscribers WHERE lower(email) LIKE :l OR lower(name) LIKE :l "
               "OR zip LIKE :l ORDER BY id DESC LIMIT 51")
    times = []
    with db.engine.connect() as conn:
        conn.execute(sql, {"l": like}).all()
        for _ in range(repeat):
            started = time.perf_counter()
            conn.execute(sql, {"l": like}).all()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def live_counts(db, settings, create_app) -> None:
    """Baseline: the pages that show an audience count, counting it on every view (as they
    did before stored counts: MAILER_AUDIENCE_LIVE_LIMIT above the list's size)."""
    live = settings.model_copy(update={"audience_live_limit": 10**12})
    base, server, _thread = _serve(create_app(live, db))
    with httpx.Client(base_url=base, timeout=60, follow_redirects=True) as client:
        login(client)
        for path in COUNTING:
            print(f"baseline: {path:45} {timed(client, path, db=db):8.3f} s counted on every view",
                  flush=True)
    server.should_exit = True


def login(client: httpx.Client) -> None:
    page = client.get("/admin/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    done = client.post("/admin/login", data={"csrf_token": token, "name": "bench",
                                             "password": "bench password 1",
                                             "next": "/admin/campaigns"})
    assert done.status_code == 200, done.text[:300]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        os.environ.update({"MAILER_DATABASE_URL": url, "MAILER_SECRET_KEY": "bench",
                           "MAILER_OUTBOX_DIR": str(Path(tmp) / "outbox"),
                           "MAILER_PUBLIC_URL": "http://127.0.0.1"})
        from mailer.settings import get_settings
        from mailer.web.app import create_app
        from mailer.web.auth import create_user

        db = fresh_database(url)
        started = time.perf_counter()
        build(db, args.subscribers)
        print(f"built {args.subscribers:,} subscribers and {2 * args.subscribers:,} deliveries "
              f"on {db.dialect} in {time.perf_counter() - started:.0f} s", flush=True)
        with db.session() as session:
            create_user(session, "bench", "admin", "bench password 1")
            _unsent(session)
        base, server, _thread = _serve(create_app(get_settings(), db))
        with httpx.Client(base_url=base, timeout=60, follow_redirects=True) as client:
            login(client)
            floor = timed(client, "/healthz")
            print(f"{'page':55} {'seconds':>8}   (floor: GET /healthz {floor:.3f} s)")
            for path in PAGES:
                path, first = path.format(middle=args.subscribers // 2), []
                seconds = timed(client, path, first=first, db=db)
                note = (f"   (first view {first[0]:.3f} s: counts what is not stored yet)"
                        if path in COUNTING else "")
                print(f"{path:55} {seconds:8.3f}{note}", flush=True)
        server.should_exit = True
        live_counts(db, get_settings(), create_app)
        for wanted in ("hanson", "xqzw"):
            print(f"baseline: the old LIKE scan for {wanted!r:10} "
                  f"{old_search_seconds(db, wanted):8.3f} s")


if __name__ == "__main__":
    main()
