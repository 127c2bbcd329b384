"""The dashboard's release pages: upload or address import (the CLI's action and report),
the list (order, search, topic filter, pages), a release's page, tags; and who may."""

from __future__ import annotations

import functools
import http.server
import re
import threading
from datetime import date

import pytest
from sqlalchemy import func, select, text

from mailer.campaigns.models import Campaign
from mailer.ingest.models import Release, ReleaseTopic
from tests.conftest import FEEDS_DIR, SEED_RELEASE
from tests.web.conftest import add_user, csrf_from, login

HTML_PAGE = """<!DOCTYPE html>
<html><head><title>Smith Backs Farmers | Senator Smith</title></head>
<body><nav>Menu</nav><main><article>
<time datetime="2025-10-01">October 1, 2025</time>
<h1>Smith Backs Farmers in Drought Relief Bill</h1>
<p>WASHINGTON – Senator Smith today backed the drought relief bill for farmers.</p>
<p>“Our farmers need help now,” said Smith.</p>
</article></main></body></html>
"""
MARKDOWN = """---
title: Smith Introduces the Rural Broadband Act
date: 2025-11-03
---
WASHINGTON — Senator Smith today introduced the **Rural Broadband Act**.

It would connect 40,000 homes.
"""


@pytest.fixture
def staff(db):
    add_user(db, "alice", "author")
    add_user(db, "bob", "approver")


@pytest.fixture
def feed_server():
    """The fixture feeds served over HTTP on loopback (never the internet)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(FEEDS_DIR))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def post_import(client, files=(), url: str = ""):
    """Post the import form as a browser does: files as (name, bytes) pairs."""
    page = client.get("/admin/releases")
    return client.post("/admin/releases/import",
                       data={"csrf_token": csrf_from(page.text), "url": url},
                       files=[("file", (name, data, "application/octet-stream"))
                              for name, data in files] or None)


def count_releases(db) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Release))


def source_row(page, source: str) -> list[int]:
    """The created / updated / already-imported counts the report shows for ``source``."""
    row = page.text.split(f'data-source="{source}"', 1)[1].split("</tr>", 1)[0]
    return [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', row)]


def error_message(page) -> str:
    """The error page's one line (and that it is one line, without a traceback)."""
    match = re.search(r"</h1>\s*<p>(.*?)</p>", page.text, re.S)
    assert match, page.text
    assert "\n" not in match.group(1) and "Traceback" not in page.text
    return match.group(1).replace("&#39;", "'")


def listed_ids(page) -> list[int]:
    return [int(i) for i in re.findall(r'data-release-id="(\d+)"', page.text)]


def add_release(db, title: str, day: date | None, body: str = "Body text.") -> int:
    with db.session() as session:
        release = Release(title=title, date=day, body=body, source="test",
                          content_hash=f"hash-{title}")
        session.add(release)
        session.flush()
        return release.id


# --- import --------------------------------------------------------------------------------

def test_author_uploads_text_html_and_markdown_and_a_second_upload_says_existing(
        client, db, staff):
    files = [("heitkamp.txt", SEED_RELEASE.read_bytes()), ("farmers.html", HTML_PAGE.encode()),
             ("broadband.md", MARKDOWN.encode())]
    login(client, "alice")
    first = post_import(client, files)
    assert first.status_code == 200, first.text
    assert "3 created, 0 updated, 0 already imported" in first.text
    for name, _ in files:
        assert source_row(first, name) == [1, 0, 0]
    with db.session() as session:
        stored = {r.source: r for r in session.scalars(select(Release))}
    assert set(stored) == {"heitkamp.txt", "farmers.html", "broadband.md"}  # not a temp path
    assert stored["heitkamp.txt"].title.startswith("Heitkamp Leads Training in Fargo")
    assert stored["heitkamp.txt"].date == date(2014, 5, 9)
    assert stored["farmers.html"].title == "Smith Backs Farmers in Drought Relief Bill"
    assert stored["broadband.md"].date == date(2025, 11, 3)

    again = post_import(client, files[:1])
    assert again.status_code == 200
    assert source_row(again, "heitkamp.txt") == [0, 0, 1]
    assert f'data-outcome="existing"><a href="/admin/releases/{stored["heitkamp.txt"].id}"' \
        in again.text
    assert count_releases(db) == 3


@pytest.mark.parametrize("name, data, status, reason", [
    ("release.pdf", b"Title\n\nBody", 400, "not a text, HTML, Markdown or feed file"),
    ("release.txt", b"%PDF-1.4 binary", 400, "this is a PDF"),
    ("release.txt", b"Title\x00\x01\x02\x03 body", 400, "binary file"),
    ("release.txt", b"\xef\xbb\xbfTitle\n\n\xff\xfe\xfd body", 400, "not valid utf-8"),
    ("release.txt", b"   \n\n", 400, "the file is empty"),
    ("release.txt", b"Headline\n\n" + b"word " * 1000, 413, "over the import limit"),
])
def test_a_bad_file_is_a_one_line_4xx_and_nothing_is_stored(client, db, staff, name, data,
                                                            status, reason):
    client.app.state.settings.max_import_bytes = 4000  # the app's own settings
    login(client, "alice")
    good = ("heitkamp.txt", SEED_RELEASE.read_bytes()[:3000])
    answer = post_import(client, [good, (name, data)])
    assert answer.status_code == status, answer.text
    assert reason in error_message(answer)
    assert count_releases(db) == 0  # all or nothing: the good file was not stored either


def test_feed_address_import_from_a_loopback_server_then_existing(client, db, staff,
                                                                  feed_server):
    url = f"{feed_server}/ruiz_rss.xml"
    login(client, "alice")
    first = post_import(client, url=url)
    assert first.status_code == 200, first.text
    created, updated, existing = source_row(first, url)
    assert created > 1 and updated == existing == 0
    assert count_releases(db) == created
    again = post_import(client, url=url)
    assert source_row(again, url) == [0, 0, created]
    assert count_releases(db) == created


@pytest.mark.parametrize("url, reason", [
    ("/etc/passwd", "starting with http:// or https://"),  # never a file on the server
    ("file:///etc/passwd", "starting with http:// or https://"),
    ("http://127.0.0.1:9/none.xml", "cannot fetch"),
])
def test_a_bad_address_is_a_one_line_400(client, db, staff, url, reason):
    login(client, "alice")
    answer = post_import(client, url=url)
    assert answer.status_code == 400 and reason in error_message(answer)
    assert count_releases(db) == 0


def test_a_missing_feed_page_names_the_address(client, db, staff, feed_server):
    login(client, "alice")
    answer = post_import(client, url=f"{feed_server}/gone.xml")
    assert answer.status_code == 400
    assert error_message(answer) == f"{feed_server}/gone.xml: the server answered HTTP 404"


def test_an_empty_form_asks_for_a_file_or_address_and_too_many_files_are_refused(
        client, db, staff):
    login(client, "alice")
    answer = post_import(client)
    assert answer.status_code == 400
    assert error_message(answer) == "choose a release file or give a page or feed address"
    many = [(f"r{i}.txt", f"Headline {i}\n\nBody {i}.".encode()) for i in range(21)]
    answer = post_import(client, many)
    assert answer.status_code == 400
    assert error_message(answer) == "import at most 20 files at once"
    assert count_releases(db) == 0


# --- list ----------------------------------------------------------------------------------

def test_list_is_newest_release_date_first_and_searches_title_and_body(client, db, staff):
    old = add_release(db, "Farm Bill Passes", date(2020, 1, 5), "Wheat growers cheer.")
    new = add_release(db, "Broadband Grant", date(2025, 3, 1), "Rural homes get fiber.")
    undated = add_release(db, "Statement on the Flood", None, "Thoughts with Fargo. 100%")
    middle = add_release(db, "Veterans Clinic Opens", date(2023, 7, 4), "The farm town clinic.")
    login(client, "alice")
    page = client.get("/admin/releases")
    assert listed_ids(page) == [new, middle, old, undated]
    assert "Mar 01, 2025" in page.text and "undated" in page.text  # the office's format
    assert listed_ids(client.get("/admin/releases", params={"q": "FARM"})) == [middle, old]
    assert listed_ids(client.get("/admin/releases", params={"q": "rural fiber"})) == [new]
    assert listed_ids(client.get("/admin/releases", params={"q": "rural wheat"})) == []
    assert listed_ids(client.get("/admin/releases", params={"q": "100%"})) == [undated]
    assert listed_ids(client.get("/admin/releases", params={"q": "%"})) == [undated]
    assert listed_ids(client.get("/admin/releases", params={"q": "_"})) == []
    nul = client.get("/admin/releases", params={"q": "farm\x00"})
    assert nul.status_code == 200 and listed_ids(nul) == [middle, old]
    assert "No release matches." in client.get("/admin/releases", params={"q": "zzz"}).text


def test_long_words_use_the_index_and_short_ones_a_bounded_window(db, monkeypatch):
    from mailer.ingest import search, service

    old = add_release(db, "Old Farm News", date(2001, 1, 1), "An ox at the fair.")
    recent = add_release(db, "Farm Update", date(2024, 1, 1), "An ox at the show.")
    add_release(db, "Other", date(2024, 6, 1))
    monkeypatch.setattr(search, "SEARCH_WINDOW", 2)
    monkeypatch.setattr(search, "RECENT", 1)  # PostgreSQL: the newest first, then the index

    def found(text: str, offset: int = 0, limit: int = 10) -> list[int]:
        with db.session() as session:
            return [r.id for r in service.list_releases(session, text=text, offset=offset,
                                                        limit=limit)]

    assert found("farm") == [recent, old]  # the trigram index: every release
    assert found("farm", limit=1) == [recent] and found("farm", offset=1) == [old]
    assert found("farm", offset=2) == []
    assert found("ox") == [recent]  # too short to index: only the newest two are read
    assert found("farm ox") == [recent]
    with db.session() as session:
        session.get(Release, old).title = "Old Ranch News"  # the index follows an edit
    assert found("farm") == [recent] and found("ranch") == [old]
    with db.session() as session:
        session.delete(session.get(Release, recent))
    assert found("farm") == []


def test_the_trigram_index_is_in_place(db):
    """Migration 0017: what keeps a search of long words from reading bodies."""
    with db.session() as session:
        if db.dialect == "sqlite":
            found = session.scalar(text("SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                        "AND name = 'release_search'"))
            assert found == 1
        else:
            found = session.scalar(text("SELECT count(*) FROM pg_indexes WHERE indexname IN "
                                        "('ix_releases_title_trgm', 'ix_releases_body_trgm')"))
            assert found == 2


def test_list_filters_by_topic_and_pages_25_at_a_time(client, db, staff, topics):
    ids = [add_release(db, f"Release {i:02d}", date(2024, 1, 1 + i)) for i in range(30)]
    login(client, "alice")
    for release_id in ids[:3]:
        post_tag(client, release_id, "human-trafficking")
    post_tag(client, ids[1], "human-trafficking", on=False)
    tagged = client.get("/admin/releases", params={"topic": "human-trafficking"})
    assert listed_ids(tagged) == [ids[2], ids[0]]
    assert client.get("/admin/releases", params={"topic": "nope"}).status_code == 400

    first = client.get("/admin/releases")
    assert listed_ids(first) == ids[::-1][:25]
    assert 'href="/admin/releases?page=2">Older</a>' in first.text
    second = client.get("/admin/releases", params={"page": 2})
    assert listed_ids(second) == ids[::-1][25:]
    assert "Older</a>" not in second.text and "page=1\">Newer</a>" in second.text
    searched = client.get("/admin/releases", params={"q": "release", "page": 2})
    assert listed_ids(searched) == ids[::-1][25:]
    assert 'href="/admin/releases?q=release&amp;page=1">Newer</a>' in searched.text
    assert client.get("/admin/releases", params={"page": 0}).status_code == 400


# --- a release's page and its tags ---------------------------------------------------------

def post_tag(client, release_id: int, topic: str, *, on: bool = True):
    page = client.get(f"/admin/releases/{release_id}")
    return client.post(f"/admin/releases/{release_id}/{'tag' if on else 'untag'}",
                       data={"csrf_token": csrf_from(page.text), "topic": topic},
                       follow_redirects=False)


def test_release_page_shows_fields_campaigns_and_the_create_link(client, db, staff, release_id):
    login(client, "alice")
    page = client.get("/admin/releases/new", params={"release_id": release_id})
    assert page.status_code == 404  # not a release id
    with db.session() as session:
        session.add(Campaign(release_id=release_id, subject="Trafficking bill news",
                             query='status = "active"', created_by="alice"))
    page = client.get(f"/admin/releases/{release_id}")
    assert page.status_code == 200
    assert "Heitkamp Bill to Combat Human Trafficking Passes Senate" in page.text
    assert '<dd data-field="date">May 09, 2014</dd>' in page.text
    assert '<dd class="small break" data-field="source">seed</dd>' in page.text
    assert f'href="/admin/campaigns/new?release_id={release_id}"' in page.text
    with db.session() as session:
        campaign_id = session.scalar(select(Campaign.id))
    assert f'<a href="/admin/campaigns/{campaign_id}">Campaign {campaign_id}: Trafficking bill ' \
           "news</a>" in page.text
    new = client.get(f"/admin/campaigns/new?release_id={release_id}")
    assert f'<option value="{release_id}" selected>' in new.text
    assert client.get("/admin/releases/999").status_code == 404


def test_author_adds_and_removes_a_tag_with_the_clis_action(client, db, staff, topics,
                                                             release_id, cli):
    login(client, "alice")
    added = post_tag(client, release_id, "agriculture")
    assert added.status_code == 303
    page = client.get(f"/admin/releases/{release_id}")
    assert "Topics: agriculture." in page.text and 'data-topic="agriculture"' in page.text
    with db.session() as session:
        link = session.get(ReleaseTopic, (release_id, _topic_id(session, "agriculture")))
        assert link.origin == "manual"
    removed = post_tag(client, release_id, "agriculture", on=False)
    assert removed.status_code == 303
    page = client.get(f"/admin/releases/{release_id}")
    assert 'data-topic="agriculture"' not in page.text and "(removed by staff)" in page.text
    with db.session() as session:
        link = session.get(ReleaseTopic, (release_id, _topic_id(session, "agriculture")))
        assert link.origin == "removed"
    unknown = post_tag(client, release_id, "no-such-topic")
    assert "no topic &#39;no-such-topic&#39;" in client.get(unknown.headers["location"]).text
    assert post_tag(client, release_id, " ").status_code == 400
    # The CLI's command is the same action: it sees and changes the same tags.
    shown = cli("releases", "tag", str(release_id), "human-trafficking", "--json")
    assert shown.exit_code == 0 and shown.json()["topics"] == ["human-trafficking"]
    assert 'data-topic="human-trafficking"' in client.get(f"/admin/releases/{release_id}").text


def _topic_id(session, slug: str) -> int:
    from subscribers.models import Topic

    return session.scalar(select(Topic.id).where(Topic.slug == slug))


# --- who may ------------------------------------------------------------------------------

def test_logged_out_people_are_sent_to_log_in_and_change_nothing(client, db, staff,
                                                                 release_id, topics):
    page = client.get("/admin/releases", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/admin/login")
    login(client, "alice")
    form = client.get(f"/admin/releases/{release_id}")
    token = csrf_from(form.text)
    client.post("/admin/logout", data={"csrf_token": token})
    for path, data in ((f"/admin/releases/{release_id}/tag", {"topic": "agriculture"}),
                       ("/admin/releases/import", {"url": "http://127.0.0.1:9/x"})):
        refused = client.post(path, data={**data, "csrf_token": token},
                              follow_redirects=False)
        assert refused.status_code in (303, 403), path
        assert refused.status_code == 403 or \
            refused.headers["location"].startswith("/admin/login")
    anonymous = client.post("/admin/releases/import",
                            files=[("file", ("r.txt", SEED_RELEASE.read_bytes(), "text/plain"))],
                            follow_redirects=False)
    assert anonymous.status_code in (303, 403)
    assert count_releases(db) == 1
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(ReleaseTopic)) == 0


def test_a_user_with_no_known_role_may_not_import_or_tag(client, db, release_id, topics):
    add_user(db, "carol", "author")
    from mailer.web.models import User

    with db.session() as session:
        session.scalar(select(User).where(User.name == "carol")).role = "intern"
    login(client, "carol")
    page = client.get("/admin/releases")
    assert "Import releases" not in page.text
    refused = post_import(client, [("r.txt", SEED_RELEASE.read_bytes())])
    assert refused.status_code == 403 and "may import releases" in refused.text
    tag = post_tag(client, release_id, "agriculture")
    assert tag.status_code == 403 and "may tag releases" in tag.text
    assert count_releases(db) == 1


def test_release_page_title_is_one_line_and_its_text_is_shown_once(client, staff, release_id):
    login(client, "alice")
    page = client.get(f"/admin/releases/{release_id}").text
    title = page.split("<title>", 1)[1].split("</title>", 1)[0]
    assert title.startswith(f"Release {release_id} · ") and "<" not in title
    assert page.count('id="text-title"') == 1
