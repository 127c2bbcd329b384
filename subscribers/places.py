"""Where constituents live: a U.S. ZIP code's state, county and city, from the ``zipcodes``
package's bundled dataset (USPS ZIP codes with their county; no network at run time).

A county or state given by the person or in a file always wins over the derived one: the
ZIP only fills what is missing. A ZIP the dataset does not know (new, or not U.S.) fills
nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import zipcodes
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from subscribers.models import Subscriber


@dataclass(frozen=True, slots=True)
class Place:
    state: str
    county: str | None
    city: str | None


@functools.cache
def _table() -> dict[str, Place]:
    """ZIP -> Place for the whole dataset, built once per process (about half a second):
    the package's own lookup costs a millisecond a call, too slow for a large import."""
    return {row["zip_code"]: Place(row["state"], _county(row["county"]), row["city"] or None)
            for row in zipcodes.list_all()}


def load() -> None:
    """Build the ZIP table now: a web process does it before it serves, so its first signup
    does not stall every request it holds for the table's half second."""
    _table()


def _county(name: str | None) -> str | None:
    """"Cass County" -> "Cass" (how offices, files and segments name counties)."""
    if not name:
        return None
    for suffix in (" County", " Parish", " Borough", " Census Area", " Municipality"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def place_for(zip_code: str | None) -> Place | None:
    """The place of a ZIP or ZIP+4 (``58102``, ``58102-1234``), or None."""
    if not zip_code:
        return None
    return _table().get(zip_code.strip()[:5])


def fill_place(zip_code: str | None, county: str | None, state: str | None,
               city: str | None = None) -> tuple[str | None, str | None, str | None]:
    """``(county, state, city)``: as given, with what is missing filled from the ZIP."""
    if county and state and city:
        return county, state, city
    place = place_for(zip_code)
    if place is None:
        return county, state, city
    if state and state != place.state:  # a ZIP from another state than the one given
        return county, state, city
    return county or place.county, state or place.state, city or place.city


def backfill(session: Session, *, chunk: int = 5_000) -> int:
    """Fill the county, state and city of every subscriber who has a ZIP but lacks one, from the
    ZIP (what they gave stays). Returns how many rows changed. Works in id order, ``chunk``
    rows at a time, so a million-row list never sits in memory."""
    changed, after = 0, 0
    while True:
        rows = session.execute(
            select(Subscriber.id, Subscriber.zip, Subscriber.county, Subscriber.state,
                   Subscriber.city)
            .where(Subscriber.id > after, Subscriber.zip.is_not(None),
                   or_(Subscriber.county.is_(None), Subscriber.state.is_(None),
                       Subscriber.city.is_(None)))
            .order_by(Subscriber.id).limit(chunk)).all()
        if not rows:
            return changed
        updates = []
        for row in rows:
            place = fill_place(row.zip, row.county, row.state, row.city)
            if place != (row.county, row.state, row.city):
                updates.append({"id": row.id, "county": place[0], "state": place[1],
                                "city": place[2]})
        if updates:
            session.execute(update(Subscriber), updates)
        changed += len(updates)
        after = rows[-1].id
