"""A ZIP code fills in the state and county, from the bundled U.S. ZIP dataset: on web signup,
on a preference change, in imports without a county, and by a backfill for existing rows. A
county given in a file wins over the derived one."""

from __future__ import annotations

from sqlalchemy import select, update

from subscribers import segments, service
from subscribers.importer import import_subscribers
from subscribers.models import Subscriber
from subscribers.places import fill_place, place_for
from tests.web.conftest import csrf_from


def place(db, email):
    with db.session() as session:
        row = session.execute(select(Subscriber.county, Subscriber.state)
                              .where(Subscriber.email == email)).one()
    return tuple(row)


def city(db, email):
    with db.session() as session:
        return session.scalar(select(Subscriber.city).where(Subscriber.email == email))


def test_a_zip_knows_its_county_and_state():
    assert place_for("58102") is not None
    assert (place_for("58102").county, place_for("58102").state) == ("Cass", "ND")
    assert place_for("58102-1234").county == "Cass"
    assert place_for("00000") is None and place_for(None) is None
    assert place_for("58102").city == "Fargo"
    assert fill_place("58102", "Clay", None) == ("Clay", "ND", "Fargo")  # given county wins
    assert fill_place("58102", None, "MN") == (None, "MN", None)  # another state: not guessed


def test_an_import_fills_what_the_file_lacks(db, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("email,zip,county\nno-county@example.org,58102,\n"
                    "own-county@example.org,58102,Clay\nno-zip@example.org,,\n",
                    encoding="utf-8")
    import_subscribers(db, path)
    assert place(db, "no-county@example.org") == ("Cass", "ND")
    assert place(db, "own-county@example.org") == ("Clay", "ND")
    assert place(db, "no-zip@example.org") == (None, None)


def test_a_web_signup_from_58102_is_in_cass_county(client, db, topics):
    page = client.get("/subscribe")
    response = client.post("/subscribe", data={
        "csrf_token": csrf_from(page.text), "email": "fargo@example.org", "name": "Fargo Fan",
        "zip": "58102", "topics": ["agriculture"], "frequency": "immediate"})
    assert response.status_code == 200, response.text
    with db.session() as session:
        session.execute(update(Subscriber).where(Subscriber.email == "fargo@example.org")
                        .values(status="active"))
    with db.session() as session:
        assert segments.count(session, query='county = "Cass"') == 1
    assert place(db, "fargo@example.org") == ("Cass", "ND")
    assert city(db, "fargo@example.org") == "Fargo"
    with db.session() as session:
        assert segments.count(session, query='city = "Fargo"') == 1


def test_the_backfill_fills_existing_rows_and_keeps_what_was_given(db, cli):
    with db.session() as session:
        service.add_subscriber(session, email="old@example.org", zip="58501")
        service.add_subscriber(session, email="given@example.org", zip="58501",
                               county="Somewhere")
        session.execute(update(Subscriber).values(county=None, state=None, city=None)
                        .where(Subscriber.email == "old@example.org"))
        session.execute(update(Subscriber).values(state=None)  # rows from before this
                        .where(Subscriber.email == "given@example.org"))
    result = cli("subscribers", "fill-places", "--json")
    assert result.exit_code == 0 and result.json() == {"updated": 2}
    assert place(db, "old@example.org") == ("Burleigh", "ND")
    assert city(db, "old@example.org") == "Bismarck"
    assert place(db, "given@example.org") == ("Somewhere", "ND")
    assert cli("subscribers", "fill-places", "--json").json() == {"updated": 0}
