"""Segments compile to bound SQL and count exactly; audiences exclude anyone not active or
suppressed; injection attempts are errors or match nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from mailer.delivery.audience import campaign_audience
from mailer.errors import InvalidInput, NotFound, QueryError
from subscribers import segments, service
from subscribers.models import BOUNCED, Segment, Subscriber


def matching(db, query):
    with db.session() as session:
        rows = session.scalars(segments.matching_select(session, query=query)).all()
        return sorted(s.email.split("@")[0] for s in rows)


def audience(db, query):
    with db.session() as session:
        return [r.email.split("@")[0]
                for r in session.execute(segments.audience_select(session, query=query))]


def test_issue_example_counts_exactly(db, people):
    query = 'county in ("Cass", "Ward") and not zip ~ "581*"'
    # cass3 has no ZIP: "not zip ~ 581*" is true for them (no NULL surprises).
    assert matching(db, query) == ["cass2", "cass3", "ward1"]
    with db.session() as session:
        assert segments.count(session, query=query) == 3


@pytest.mark.parametrize(("query", "expected"), [
    ('county = "Cass"', ["cass1", "cass2", "cass3"]),
    ('county != "Cass"', ["burleigh", "mn", "nocounty", "ward1", "ward2"]),
    ('not county = "Cass" and state = "nd"', ["burleigh", "nocounty", "ward1", "ward2"]),
    ('zip ~ "581*"', ["cass1", "ward2"]),
    ('zip ~ "*01"', ["burleigh", "nocounty", "ward1"]),
    ('zip >= "58500" and zip < "58600"', ["burleigh"]),
    ("zip = 58102", ["cass1"]),
    ('county ~ "c*"', ["cass1", "cass2", "cass3", "mn"]),
    ('topic = "human-trafficking"', ["burleigh", "cass1", "ward1"]),
    ('topic = "Human-Trafficking"', ["burleigh", "cass1", "ward1"]),
    ('topic != "human-trafficking"', ["cass2", "cass3", "mn", "nocounty", "ward2"]),
    ('topic in ("veterans", "agriculture")', ["cass2", "nocounty", "ward1"]),
    ('topic ~ "vet*"', ["nocounty", "ward1"]),
    ('topic = "no-such-topic"', []),
    ('email = "CASS1@Example.ORG"', ["cass1"]),
    ('email ~ "*@example.com"', ["mn"]),
    ('state = "MN" or (county = "Ward" and topic = "veterans")', ["mn", "ward1"]),
    ('status = "active" and frequency = "immediate"',
     ["burleigh", "cass1", "cass2", "cass3", "mn", "nocounty", "ward1", "ward2"]),
    ('district = "AL"', []),
])
def test_semantics(db, people, query, expected):
    assert matching(db, query) == expected


def test_glob_treats_percent_and_underscore_literally_and_ignores_case(db, topics):
    with db.session() as session:
        for email, name in [("a@example.org", "100% Fan"), ("b@example.org", "100 Fans"),
                            ("c@example.org", "a_b"), ("d@example.org", "axb")]:
            service.add_subscriber(session, email=email, name=name)
    assert matching(db, 'name ~ "100%*"') == ["a"]
    assert matching(db, 'name ~ "a_b"') == ["c"]
    assert matching(db, 'name ~ "A*B"') == ["c", "d"]
    assert matching(db, 'name ~ "*FAN*"') == ["a", "b"]


def test_closed_sets_refuse_typos_with_position(db):
    with pytest.raises(QueryError) as info:
        segments.compile_query('county = "Cass" and status = "actve"')
    assert info.value.position == 29
    with pytest.raises(QueryError, match="frequency is one of"):
        segments.compile_query('frequency in ("daily", "hourly")')
    with pytest.raises(QueryError, match="joined"):
        segments.compile_query('joined ~ "2024*"')
    with pytest.raises(QueryError, match="ISO date"):
        segments.compile_query('joined > "yesterday"')
    with pytest.raises(QueryError, match="topic"):
        segments.compile_query('topic > "a"')


def test_joined_compares_dates_in_the_office_zone(db, topics):
    chicago = ZoneInfo("America/Chicago")
    with db.session() as session:
        for email, at in [
            ("early@example.org", datetime(2024, 3, 1, 5, 59, tzinfo=UTC)),  # Feb 29, 23:59 CST
            ("mid@example.org", datetime(2024, 3, 1, 6, 0, tzinfo=UTC)),  # Mar 1, 00:00 CST
            ("late@example.org", datetime(2024, 3, 2, 5, 59, tzinfo=UTC)),  # Mar 1, 23:59 CST
        ]:
            subscriber, _ = service.add_subscriber(session, email=email)
            subscriber.created_at = at
    def names(q):
        with db.session() as session:
            cond = segments.compile_query(q, zone=chicago)
            return sorted(e.split("@")[0] for e in session.scalars(
                select(Subscriber.email).where(cond)))
    assert names("joined = 2024-03-01") == ["late", "mid"]
    assert names("joined < 2024-03-01") == ["early"]
    assert names("joined <= 2024-03-01") == ["early", "late", "mid"]
    assert names("joined > 2024-02-29") == ["late", "mid"]
    assert names("joined >= 2024-03-02") == []
    assert names("joined != 2024-03-01") == ["early"]
    assert names('joined in (2024-02-29, "2024-03-01")') == ["early", "late", "mid"]


def test_audience_excludes_inactive_and_suppressed(db, people):
    with db.session() as session:
        cass1 = service.find_by_email(session, "cass1@example.org")
        service.unsubscribe(session, cass1, cause="test")
        cass2 = service.find_by_email(session, "cass2@example.org")
        service.set_status(session, cass2, BOUNCED, cause="test bounce")
        # Active, but its address is on the suppression list (e.g. a complaint elsewhere).
        service.suppress(session, "CASS3@example.org", "complained")
        service.add_subscriber(session, email="cass4@example.org", county="Cass",
                               status="pending")
        service.add_subscriber(session, email="cass5@example.org", county="Cass")
    assert audience(db, 'county = "Cass"') == ["cass5"]
    assert matching(db, 'county = "Cass"') == ["cass1", "cass2", "cass3", "cass4", "cass5"]
    with db.session() as session:
        assert segments.count(session, query='county = "Cass"') == 1
        assert segments.count(session, query='county = "Cass"', audience=False) == 5
        # Even a query asking for them cannot put unsubscribed people in an audience.
        assert segments.count(session, query='status = "unsubscribed"') == 0


def test_audience_select_shape_and_order(db, people):
    with db.session() as session:
        rows = session.execute(segments.audience_select(session, query='state = "ND"')).all()
    assert [r._fields for r in rows[:1]] == [("id", "email", "name")]
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert len(rows) == 7


def test_saved_segment_is_evaluated_when_used(db, people):
    with db.session() as session:
        saved = segments.create_segment(session, "  Ward   county ", 'COUNTY = "Ward"')
        assert saved.name == "Ward county"
        assert saved.query == 'county = "Ward"'
    with db.session() as session:
        service.add_subscriber(session, email="ward3@example.org", county="Ward")
    with db.session() as session:
        assert segments.count(session, segment="Ward county") == 3
        campaign = SimpleNamespace(id=1, segment_id=saved.id, query=None)
        rows = session.execute(campaign_audience(session, campaign)).all()
        assert [r.email for r in rows] == ["ward1@example.org", "ward2@example.org",
                                           "ward3@example.org"]
        by_query = SimpleNamespace(id=2, segment_id=None, query='topic = "veterans"')
        assert len(session.execute(campaign_audience(session, by_query)).all()) == 2
        with pytest.raises(QueryError):
            campaign_audience(session, SimpleNamespace(id=3, segment_id=None,
                                                                query=None))


def test_segment_errors(db, people):
    with db.session() as session:
        segments.create_segment(session, "cass", 'county = "Cass"')
    with db.session() as session:
        with pytest.raises(InvalidInput, match="already exists"):
            segments.create_segment(session, "cass", 'county = "Ward"')
        with pytest.raises(QueryError):
            segments.create_segment(session, "bad", 'status = "gone"')
        with pytest.raises(InvalidInput, match="name"):
            segments.create_segment(session, "   ", 'county = "Ward"')
        with pytest.raises(NotFound):
            segments.count(session, segment="nope")
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Segment)) == 1


def test_unknown_topics_are_reported(db, topics):
    with db.session() as session:
        assert segments.unknown_topics(
            session, 'topic = "veterans" or topic in ("farm", "Agriculture") or topic ~ "x*"'
        ) == ["farm"]


def test_values_are_bound_never_spliced(db, people):
    statement = select(Subscriber.id).where(
        segments.compile_query('county = "Robert\'); DROP TABLE subscribers;--" or zip ~ "5*"'))
    sql = str(statement.compile(db.engine))
    assert "DROP" not in sql and "Robert" not in sql and "5%" not in sql


def test_injection_attempts_fail_cleanly_and_leave_data_untouched(db, people):
    with db.session() as session:
        before = session.scalar(select(func.count()).select_from(Subscriber))
        with pytest.raises(QueryError) as info:
            segments.count(session, query='zip = "1" ; DROP TABLE subscribers --')
        assert info.value.position == 10
        assert segments.count(session, query='name = "x\' OR 1=1 --"') == 0
        assert segments.count(session, query='county = "Cass\\" or 1=1 --"') == 0
        assert segments.count(session, query="name = \"'; DELETE FROM subscribers; --\"") == 0
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == before
        # The same text as data is matched literally, proving it is a bound value.
        session.execute(update(Subscriber).where(Subscriber.email == "mn@example.com")
                        .values(name="x' OR 1=1 --"))
    assert matching(db, 'name = "x\' OR 1=1 --"') == ["mn"]


def test_count_subtracts_suppressed_followers_exactly(db, people):
    with db.session() as session:
        service.suppress(session, "ward1@example.org", "complained")  # follows two topics
        service.suppress(session, "nobody-here@example.org", "forgotten")
        for query in ['topic = "veterans"', 'topic in ("veterans", "human-trafficking")',
                      'not topic = "veterans"', 'state = "ND"', 'county = "Ward"']:
            listed = session.execute(segments.audience_select(session, query=query)).all()
            assert segments.count(session, query=query) == len(listed), query
        assert segments.count(session, query='topic = "veterans"') == 1
