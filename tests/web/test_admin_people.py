"""The dashboard's people pages: search and filters, CSV import and export, erasure (asked
first), topics; each refused to a role the contract does not give it."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from mailer.delivery.outgoing import OutgoingMail
from mailer.tracking.erasure import forget
from subscribers import search as search_module
from subscribers.models import Subscriber
from subscribers.search import Search, search
from subscribers.service import set_status
from tests.web.conftest import (
    add_subscriber,
    add_user,
    body_text,
    csrf_from,
    login,
    outbox_messages,
)


@pytest.fixture
def staff(db):
    add_user(db, "alice", "author")
    add_user(db, "bob", "approver")


def emails_on(page) -> list[str]:
    return [line.split('">', 1)[1].split("<", 1)[0]
            for line in page.text.split('<a href="/admin/subscribers/')[1:]
            if line[:1].isdigit()]


def test_search_finds_a_piece_of_an_address_or_a_name_and_follows_changes(db):
    hans = add_subscriber(db, "ole.hanson@example.org", name="Ole Hanson")
    add_subscriber(db, "ingrid@example.org", name="Ingrid Sørensen")
    add_subscriber(db, "mary@example.org", name="Mary Moen")

    def found(text: str) -> list[str]:
        with db.session() as session:
            return sorted(s.email for s in search(session, Search(text=text)))

    assert found("HANS") == ["ole.hanson@example.org"]  # the name and the address match
    assert found("sØren") == ["ingrid@example.org"]  # not ASCII, any case
    assert found("example.org") == ["ingrid@example.org", "mary@example.org",
                                    "ole.hanson@example.org"]
    assert found("zz") == [] and found("%") == [] and found("_") == []
    with db.session() as session:
        session.get(Subscriber, hans).name = "Ole Bakken"
    assert found("bakken") == ["ole.hanson@example.org"]  # the index follows an edit
    with db.session() as session:
        forget(session, session.get(Subscriber, hans))
    assert found("hanson") == [] and found("bakken") == []


def test_search_filters_by_status_topic_county_and_zip(db, topics):
    a = add_subscriber(db, "a@example.org", topics=["agriculture"])
    add_subscriber(db, "b@example.org", topics=["human-trafficking"])
    with db.session() as session:
        person = session.get(Subscriber, a)
        person.county, person.zip = "Cass", "58102"
        set_status(session, person, "unsubscribed", cause="test")

    def found(**wanted) -> list[str]:
        with db.session() as session:
            return sorted(s.email for s in search(session, Search(**wanted)))

    assert found(status="unsubscribed") == ["a@example.org"]
    assert found(topic="human-trafficking") == ["b@example.org"]
    assert found(county="cass") == ["a@example.org"]
    assert found(text="581") == ["a@example.org"]  # the start of a ZIP code
    assert found(text="58") == ["a@example.org"] and found(text="5") == ["a@example.org"]
    assert found(text="582") == [] and found(text="58103") == []
    assert found(text="example", status="active") == ["b@example.org"]


def test_subscribers_page_filters_and_pages(client, db, staff, topics):
    for i in range(55):
        add_subscriber(db, f"person{i:02d}@example.org", topics=["agriculture"])
    add_subscriber(db, "other@example.org")
    login(client, "alice")
    first = client.get("/admin/subscribers", params={"q": "person", "topic": "agriculture"})
    assert first.status_code == 200
    assert len(emails_on(first)) == 50 and emails_on(first)[0] == "person54@example.org"
    assert "page=2" in first.text and "topic=agriculture" in first.text
    second = client.get("/admin/subscribers",
                        params={"q": "person", "topic": "agriculture", "page": 2})
    assert emails_on(second) == [f"person{i:02d}@example.org" for i in range(4, -1, -1)]
    assert client.get("/admin/subscribers", params={"status": "nonsense"}).status_code == 400
    short = client.get("/admin/subscribers", params={"q": "pe"})
    assert "Type at least three letters" in short.text and emails_on(short) == []


def test_export_is_formula_safe_and_for_approvers(client, db, staff):
    add_subscriber(db, "sheet@example.org", name="=HYPERLINK(\"http://x\")")
    login(client, "alice")
    assert client.get("/admin/subscribers/export.csv").status_code == 403
    client.cookies.clear()
    login(client, "bob")
    response = client.get("/admin/subscribers/export.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [r["email"] for r in rows] == ["sheet@example.org"]
    assert rows[0]["name"].startswith("'=")  # a spreadsheet shows it, never runs it


def test_csv_upload_reports_each_line_like_the_cli(client, db, staff, topics):
    upload = ("email,name,zip\nnew@example.org,New Person,58102\nnot-an-address,Bad,1\n"
              "new@example.org,Again,58102\n")
    login(client, "alice")
    form = client.get("/admin/subscribers/import")
    assert form.status_code == 403
    client.cookies.clear()
    login(client, "bob")
    form = client.get("/admin/subscribers/import")
    done = client.post("/admin/subscribers/import",
                       data={"csrf_token": csrf_from(form.text), "topics": "agriculture"},
                       files={"file": ("list.csv", upload.encode(), "text/csv")})
    assert done.status_code == 200, done.text
    assert "3 rows: 1 created" in done.text and "1 duplicates" in done.text
    assert "line 3:" in done.text  # the bad address, by its line
    with db.session() as session:
        [person] = search(session, Search(text="new@example.org"))
        assert person.county == "Cass"
        assert person.consent_source == "import list.csv (uploaded by bob) line 2"
    missing = client.post("/admin/subscribers/import", data={"csrf_token": csrf_from(form.text)})
    assert missing.status_code == 400 and "choose a CSV file" in missing.text


def test_a_double_opt_in_upload_queues_the_confirmations_and_does_not_send_them(
        client, db, staff, topics, settings):
    login(client, "bob")
    form = client.get("/admin/subscribers/import")
    done = client.post("/admin/subscribers/import",
                       data={"csrf_token": csrf_from(form.text), "double_opt_in": "1"},
                       files={"file": ("list.csv", b"email\na@example.org\nb@example.org\n",
                                       "text/csv")})
    assert done.status_code == 200, done.text
    assert "Confirmation emails: 2 queued" in done.text
    with db.session() as session:
        assert sorted(session.execute(select(OutgoingMail.email, OutgoingMail.status))) == [
            ("a@example.org", "queued"), ("b@example.org", "queued")]
    sent = outbox_messages(settings)  # the queue runs
    assert sorted(m["To"].addresses[0].addr_spec for m in sent) == ["a@example.org",
                                                                    "b@example.org"]
    assert all("/confirm/" in body_text(m) for m in sent)


def test_erasure_is_asked_first_then_done(client, db, staff):
    person = add_subscriber(db, "erase.me@example.org", name="Erase Me")
    login(client, "bob")
    page = client.get(f"/admin/subscribers/{person}")
    asked = client.post(f"/admin/subscribers/{person}/forget",
                        data={"csrf_token": csrf_from(page.text)})
    assert "Erase erase.me@example.org and everything about them?" in asked.text
    assert 'name="confirmed" value="yes"' in asked.text
    with db.session() as session:
        assert session.get(Subscriber, person).email == "erase.me@example.org"
    done = client.post(f"/admin/subscribers/{person}/forget",
                       data={"csrf_token": csrf_from(asked.text), "confirmed": "yes"})
    assert done.status_code == 200 and "Erased" in done.text
    assert "erase.me@example.org" not in client.get("/admin/subscribers").text


def test_topics_page_counts_followers(client, db, staff, topics):
    add_subscriber(db, "one@example.org", topics=["agriculture"])
    add_subscriber(db, "two@example.org", topics=["agriculture", "human-trafficking"])
    login(client, "alice")
    page = client.get("/admin/topics")
    assert page.status_code == 200
    assert '<td class="num" data-topic="agriculture">2</td>' in page.text
    assert '<td class="num" data-topic="human-trafficking">1</td>' in page.text
    assert "Add or update a topic" not in page.text  # an author does not manage topics


def test_pages_are_the_same_whichever_way_the_matches_are_found(db, monkeypatch):
    """PostgreSQL looks among the newest rows first, then asks the trigram index for older
    ones: every page must be what one "newest first" query would give."""
    monkeypatch.setattr(search_module, "RECENT_WINDOW", 3)
    for i in range(12):
        add_subscriber(db, f"{'match' if i % 3 else 'other'}{i:02d}@example.org")
    expected = [f"match{i:02d}@example.org" for i in range(11, -1, -1) if i % 3]
    with db.session() as session:
        pages = [[s.email for s in search(session, Search(text="match", limit=3, offset=o))]
                 for o in range(0, 9, 3)]
    assert pages == [expected[0:3], expected[3:6], expected[6:8]]
