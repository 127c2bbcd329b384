"""The CSV importer: real-world exports, line-numbered errors, idempotence, consent rules."""

from __future__ import annotations

import codecs
import hashlib

import pytest
from sqlalchemy import func, select

from mailer.errors import InvalidInput, NotFound
from mailer.tracking.erasure import forget
from subscribers import service
from subscribers.addresses import email_key
from subscribers.importer import SeenAddresses, import_subscribers
from subscribers.models import (
    ACTIVE,
    BOUNCED,
    PENDING,
    UNSUBSCRIBED,
    StatusChange,
    Subscriber,
    SubscriberTopic,
    Suppression,
)

MAILCHIMP = (
    'Email Address,First Name,Last Name,Address,Phone Number,TAGS,MEMBER_RATING,OPTIN_TIME,'
    'OPTIN_IP,CONFIRM_TIME,CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,'
    'LAST_CHANGED,LEID,EUID,NOTES\n'
    'Ole.Hanson@Example.org,Ole,Hanson,"12 Main St  Fargo  ND  58102  US",,'
    '"""Human Trafficking"",""Veterans""",2,2019-03-20 18:52:43,203.0.113.9,'
    '2019-03-20 18:53:01,203.0.113.9,,,,,,US,ND,2019-03-20 18:53:01,1,a1,\n'
    'ole.hanson@example.ORG,Ole,Duplicate,,,,2,,,,,,,,,,,,,2,a2,\n'               # line 3: dup
    'not-an-address,Bad,Row,,,,2,,,,,,,,,,,,,3,a3,\n'                             # line 4
    'ingrid@example.org,Ingrid,Sørensen,,,"""Agriculture""",2,,,,,,,,,,,,,4,a4,\n'
    '"Smith, Bob",Bob,Smith,,,,2,,,,,,,,,,,,,5,a5,\n'                              # line 6
    'bob@example.com,Bob,"Smith, Jr.",,,,2,,,,,,,,,,,,,6,a6,"line one\nline two"\n'
    'short@example.org,Short\n'                                                   # 9: short
    'zoë@bücher.example,Zoë,Ünïcode\n'
    '@example.org,,\n'                                                            # line 11
    '\n'
    'last@example.com,Last,Row\n'                                                 # line 13
)


def write(tmp_path, text, name="list.csv", encoding="utf-8-sig"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def snapshot(db):
    with db.session() as session:
        return {
            "subscribers": sorted(tuple(r) for r in session.execute(select(
                Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.zip,
                Subscriber.state, Subscriber.status, Subscriber.frequency,
                Subscriber.consent_at, Subscriber.updated_at))),
            "topics": sorted(tuple(r) for r in session.execute(select(
                SubscriberTopic.subscriber_id, SubscriberTopic.topic_id))),
            "changes": session.scalar(select(func.count()).select_from(StatusChange)),
            "suppressions": session.scalar(select(func.count()).select_from(Suppression)),
        }


def check_sums(report):
    data = report.to_dict()
    assert (data["created"] + data["updated"] + data["unchanged"] + data["suppressed"]
            + data["skipped"]) == data["rows"]


def test_mailchimp_export_imports_valid_rows_once_and_reruns_change_nothing(db, topics, tmp_path):
    path = write(tmp_path, MAILCHIMP)
    first = import_subscribers(db, path)
    check_sums(first)
    data = first.to_dict()
    assert data["encoding"] == "utf-8-sig"
    assert (data["created"], data["updated"], data["duplicates"]) == (6, 0, 1)
    assert [e["line"] for e in data["errors"]] == [4, 6, 11]
    assert "not-an-address" in data["errors"][0]["reason"]
    assert data["warnings"] == [{"line": 3, "reason": "same address as line 2; row ignored"}]
    assert data["skipped"] == 4 and data["rows"] == 10
    with db.session() as session:
        ole = service.find_by_email(session, "OLE.HANSON@example.org")
        assert (ole.name, ole.zip, ole.state, ole.consent_ip) == (
            "Ole Hanson", "58102", "ND", "203.0.113.9")
        assert ole.consent_at.isoformat() == "2019-03-20T18:52:43+00:00"
        assert ole.confirmed_at.isoformat() == "2019-03-20T18:53:01+00:00"
        assert service.topic_slugs(session, ole) == ["human-trafficking", "veterans"]
        assert service.find_by_email(session, "bob@example.com").name == "Bob Smith, Jr."
        assert service.find_by_email(session, "ingrid@example.org").name == "Ingrid Sørensen"
        zoe = service.find_by_email(session, "Zoë@bücher.example")
        assert zoe.email == "zoë@xn--bcher-kva.example" and zoe.name == "Zoë Ünïcode"
        assert service.find_by_email(session, "short@example.org").name == "Short"
    before = snapshot(db)
    second = import_subscribers(db, path).to_dict()
    assert (second["created"], second["updated"], second["unchanged"]) == (0, 0, 6)
    assert second["errors"] == data["errors"] and second["duplicates"] == 1
    assert snapshot(db) == before


def test_small_chunks_give_the_same_result(db, topics, tmp_path):
    report = import_subscribers(db, write(tmp_path, MAILCHIMP), chunk_size=1).to_dict()
    assert (report["created"], report["duplicates"], len(report["errors"])) == (6, 1, 3)


def test_reading_in_a_second_process_gives_the_same_result(db, topics, tmp_path):
    path = write(tmp_path, MAILCHIMP)
    seen = []
    imported = import_subscribers(db, path, chunk_size=2, parallel=True,
                                  progress=lambda done, total: seen.append((done, total)))
    check_sums(imported)
    report = imported.to_dict()
    assert (report["created"], report["duplicates"], report["rows"]) == (6, 1, 10)
    assert [e["line"] for e in report["errors"]] == [4, 6, 11]
    assert report["warnings"] == [{"line": 3, "reason": "same address as line 2; row ignored"}]
    assert report["encoding"] == "utf-8-sig" and "Phone Number" in report["ignored_columns"]
    assert seen[-1] == (path.stat().st_size,) * 2 and len(seen) > 2
    with db.session() as session:
        ole = service.find_by_email(session, "ole.hanson@example.org")
        assert service.topic_slugs(session, ole) == ["human-trafficking", "veterans"]
        assert ole.consent_at.isoformat() == "2019-03-20T18:52:43+00:00"
    again = import_subscribers(db, path, parallel=True).to_dict()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 6)


def test_a_second_process_reports_unreadable_files_the_same_way(db, topics, tmp_path):
    with pytest.raises(InvalidInput, match="no email column"):
        import_subscribers(db, write(tmp_path, "name,zip\nAnn,58102\n"), parallel=True)
    with pytest.raises(InvalidInput, match="empty"):
        import_subscribers(db, write(tmp_path, ""), parallel=True)


def test_windows_1252_and_semicolons(db, topics, tmp_path):
    text = ("E-mail;Name;Zip Code;State;Topics\r\n"
            "soren@example.org;Søren Ødegård;58501;North Dakota;veterans\r\n")
    path = write(tmp_path, text, encoding="cp1252")
    report = import_subscribers(db, path).to_dict()
    assert report["encoding"] == "cp1252" and report["created"] == 1
    with db.session() as session:
        soren = service.find_by_email(session, "soren@example.org")
        assert (soren.name, soren.state) == ("Søren Ødegård", "ND")
        assert service.topic_slugs(session, soren) == ["veterans"]


def test_utf16_tab_separated_from_excel(db, topics, tmp_path):
    text = "Email\tName\tZIP\r\nann@example.org\tÄnn\t2134\r\n"
    path = tmp_path / "excel.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    report = import_subscribers(db, path).to_dict()
    assert report["created"] == 1
    with db.session() as session:
        ann = service.find_by_email(session, "ann@example.org")
        assert (ann.name, ann.zip) == ("Änn", "02134")  # Excel dropped the leading zero


def test_listmonk_export(db, topics, tmp_path):
    text = (
        "uuid,email,name,attributes,status,created_at,updated_at\n"
        '6b0c,kari@example.org,Kari,"{""zip"": ""58701"", ""county"": ""Ward"", '
        '""topics"": [""veterans""]}",enabled,2021-05-01T10:00:00Z,2021-05-01T10:00:00Z\n'
        "7c1d,blocked@example.org,Blocked,{},blocklisted,2021-05-01 10:00:00,\n"
    )
    report = import_subscribers(db, write(tmp_path, text, encoding="utf-8")).to_dict()
    assert (report["created"], report["suppressed"]) == (1, 1)
    with db.session() as session:
        kari = service.find_by_email(session, "kari@example.org")
        assert (kari.zip, kari.county) == ("58701", "Ward")
        assert service.topic_slugs(session, kari) == ["veterans"]
        # Blocklisted: only the hash is kept, no personal data.
        assert service.find_by_email(session, "blocked@example.org") is None
        assert service.is_suppressed(session, "blocked@example.org")


def test_an_import_never_reactivates_anyone(db, topics, tmp_path):
    with db.session() as session:
        gone, _ = service.add_subscriber(session, email="gone@example.org", name="Gone")
        service.unsubscribe(session, gone, cause="one-click")
        bounced, _ = service.add_subscriber(session, email="bounced@example.org")
        service.set_status(session, bounced, BOUNCED, cause="hard bounce")
        forgotten, _ = service.add_subscriber(session, email="forgotten@example.org")
        forget(session, forgotten)
        changes = session.scalar(select(func.count()).select_from(StatusChange))
    text = ("email,name,zip\nGONE@example.org,New Name,58102\nbounced@example.org,,\n"
            "forgotten@example.org,Back Again,58102\nnew@example.org,,\n")
    report = import_subscribers(db, write(tmp_path, text)).to_dict()
    assert (report["kept_suppressed"], report["created"], report["updated"]) == (3, 1, 0)
    with db.session() as session:
        assert service.find_by_email(session, "gone@example.org").status == UNSUBSCRIBED
        assert service.find_by_email(session, "gone@example.org").name == "Gone"
        assert service.find_by_email(session, "bounced@example.org").status == BOUNCED
        assert service.find_by_email(session, "forgotten@example.org") is None
        assert session.scalar(select(func.count()).select_from(StatusChange)) == changes


def test_the_source_list_can_unsubscribe_but_not_resubscribe(db, topics, tmp_path):
    with db.session() as session:
        service.add_subscriber(session, email="leaving@example.org")
    text = ("Email Address,First Name,UNSUB_TIME,UNSUB_CAMPAIGN_TITLE\n"
            "leaving@example.org,Lee,2024-02-01 12:00:00,Newsletter\n")
    report = import_subscribers(db, write(tmp_path, text, "unsubscribed.csv")).to_dict()
    assert report["updated"] == 1
    with db.session() as session:
        leaving = service.find_by_email(session, "leaving@example.org")
        assert leaving.status == UNSUBSCRIBED and service.is_suppressed(session, leaving.email)
        [change] = service.status_history(session, leaving)
        assert change.cause == "import unsubscribed.csv line 2: unsubscribed in the source list"
    again = import_subscribers(db, write(tmp_path, text, "unsubscribed.csv")).to_dict()
    assert (again["updated"], again["unchanged"]) == (0, 1)


def test_double_opt_in_makes_new_people_pending_only(db, topics, tmp_path):
    with db.session() as session:
        service.add_subscriber(session, email="already@example.org")
    text = "email\nalready@example.org\nnew@example.org\n"
    report = import_subscribers(db, write(tmp_path, text), double_opt_in=True).to_dict()
    assert (report["created"], report["unchanged"]) == (1, 1)
    with db.session() as session:
        assert service.find_by_email(session, "already@example.org").status == ACTIVE
        assert service.find_by_email(session, "new@example.org").status == PENDING
    import_subscribers(db, write(tmp_path, text))  # without the flag: still pending
    with db.session() as session:
        assert service.find_by_email(session, "new@example.org").status == PENDING


def test_topics_option_and_unknown_topics(db, topics, tmp_path):
    text = "email,topics\na@example.org,veterans; farming\nb@example.org,\n"
    with pytest.raises(NotFound, match="nope"):
        import_subscribers(db, write(tmp_path, text), topics=["nope"])
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
    report = import_subscribers(db, write(tmp_path, text), topics=["human-trafficking"])
    assert report.to_dict()["unknown_topics"] == {"farming": 1}
    with db.session() as session:
        a = service.find_by_email(session, "a@example.org")
        b = service.find_by_email(session, "b@example.org")
        assert service.topic_slugs(session, a) == ["human-trafficking", "veterans"]
        assert service.topic_slugs(session, b) == ["human-trafficking"]


def test_later_imports_add_details_and_topics(db, topics, tmp_path):
    import_subscribers(db, write(tmp_path, "email,name\na@example.org,Ann\n"))
    later = "email,zip,topics\nA@example.org,58102,veterans\n"
    report = import_subscribers(db, write(tmp_path, later))
    assert report.updated == 1
    with db.session() as session:
        a = service.find_by_email(session, "a@example.org")
        assert (a.name, a.zip) == ("Ann", "58102")
        assert service.topic_slugs(session, a) == ["veterans"]


@pytest.mark.parametrize(("row", "reason"), [
    ("a@example.org,5810x,,", "invalid ZIP"),
    ("a@example.org,,Dakota,", "invalid state"),
    ("a@example.org,,,hourly", "invalid frequency"),
    (",,,", None),  # blank row: not a row at all
    ("  ,58102,,", "no email address"),
])
def test_row_errors_name_the_reason(db, topics, tmp_path, row, reason):
    report = import_subscribers(db, write(tmp_path, f"email,zip,state,frequency\n{row}\n"))
    if reason is None:
        assert report.rows == 0 and report.errors == []
    else:
        assert len(report.errors) == 1 and reason in report.errors[0]["reason"]
        assert report.errors[0]["line"] == 2


def test_unknown_status_is_an_error(db, topics, tmp_path):
    report = import_subscribers(db, write(tmp_path, "email,status\na@example.org,maybe\n"))
    assert report.errors == [{"line": 2, "reason": "unknown status 'maybe'"}]


def test_files_that_cannot_be_imported(db, topics, tmp_path):
    with pytest.raises(InvalidInput, match="no email column"):
        import_subscribers(db, write(tmp_path, "name,zip\nAnn,58102\n"))
    with pytest.raises(InvalidInput, match="empty"):
        import_subscribers(db, write(tmp_path, ""))
    with pytest.raises(InvalidInput, match="no such file"):
        import_subscribers(db, tmp_path / "missing.csv")


@pytest.mark.parametrize("memory_limit", [2_000_000, 300])
def test_seen_addresses_remembers_lines_and_grows(memory_limit):
    # With a limit of 300 the table moves to disk part way and must remember the same.
    seen = SeenAddresses(capacity=4, memory_limit=memory_limit)
    digests = [email_key(hashlib.sha256(str(i).encode()).hexdigest()) for i in range(1000)]
    for line, digest in enumerate(digests, start=2):
        assert seen.add(digest, line) is None
    assert (seen._disk is not None) == (memory_limit == 300)
    for line, digest in enumerate(digests, start=2):
        assert seen.add(digest, 99999) == line
    seen.close()
