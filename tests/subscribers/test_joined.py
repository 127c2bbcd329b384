"""``joined`` is when the person joined the list, as the file says, not the day of the import:
segments, the subscriber page and the dashboard read the same time."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from subscribers import segments, service
from subscribers.importer import import_subscribers
from subscribers.models import Subscriber

MAILCHIMP_2023 = (
    "Email Address,First Name,Last Name,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,CONFIRM_IP\n"
    "early@example.org,Early,Bird,2023-03-20 18:52:43,203.0.113.9,2023-03-20 18:53:01,\n"
    "later@example.org,Late,Comer,2023-11-02 09:00:00,,,\n"
    "confirmed-only@example.org,Conf,Only,,,2023-06-01 12:00:00,\n"
    "recent@example.org,New,Person,2025-05-01 08:00:00,,,\n"
    "unknown@example.org,No,Date,,,,\n"
    "future@example.org,Time,Traveller,2999-01-01 00:00:00,,,\n"
)
LISTMONK = (
    "uuid,email,name,attributes,status,created_at,updated_at\n"
    'a,lm@example.org,Lis Monk,{},enabled,2022-02-02 10:00:00,2024-01-01 00:00:00\n'
)
PLAIN = "email,name,joined\nplain@example.org,Plain Jane,2021-07-04\n"


def import_text(db, tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return import_subscribers(db, path)


def joined_at(db, email):
    with db.session() as session:
        value = session.scalar(select(Subscriber.created_at).where(Subscriber.email == email))
    return value.astimezone(UTC)


def test_a_mailchimp_export_keeps_each_persons_optin_time(db, tmp_path):
    import_text(db, tmp_path, "mailchimp.csv", MAILCHIMP_2023)
    assert joined_at(db, "early@example.org") == datetime(2023, 3, 20, 18, 52, 43, tzinfo=UTC)
    assert joined_at(db, "confirmed-only@example.org") == datetime(2023, 6, 1, 12, tzinfo=UTC)
    assert joined_at(db, "unknown@example.org").year >= 2026  # no date in the file: now
    assert joined_at(db, "future@example.org").year < 2999  # not believed
    with db.session() as session:
        before_2024 = segments.count(session, query='joined < "2024-01-01"')
        page = service.subscriber_to_dict(session, service.get_by_email(session,
                                                                        "later@example.org"))
    assert before_2024 == 3  # early, later, confirmed-only
    assert page["created_at"].startswith("2023-11-0")


def test_listmonk_created_at_and_a_plain_joined_column(db, tmp_path):
    import_text(db, tmp_path, "listmonk.csv", LISTMONK)
    import_text(db, tmp_path, "plain.csv", PLAIN)
    assert joined_at(db, "lm@example.org") == datetime(2022, 2, 2, 10, tzinfo=UTC)
    assert joined_at(db, "plain@example.org") == datetime(2021, 7, 4, tzinfo=UTC)
