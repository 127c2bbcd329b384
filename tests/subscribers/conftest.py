"""Helpers for subscriber tests: topics and a small, varied list."""

from __future__ import annotations

import pytest

from subscribers import service
from subscribers.models import Topic


@pytest.fixture
def topics(db):
    """Three topics, slug -> id."""
    with db.session() as session:
        made = [Topic(slug="human-trafficking", name="Human Trafficking"),
                Topic(slug="agriculture", name="Agriculture"),
                Topic(slug="veterans", name="Veterans")]
        session.add_all(made)
        session.flush()
        return {t.slug: t.id for t in made}


PEOPLE = [
    # email, county, zip, state, topics
    ("cass1@example.org", "Cass", "58102", "ND", ["human-trafficking"]),
    ("cass2@example.org", "Cass", "58078", "ND", ["agriculture"]),
    ("cass3@example.org", "Cass", None, "ND", []),
    ("ward1@example.org", "Ward", "58701", "ND", ["human-trafficking", "veterans"]),
    ("ward2@example.org", "Ward", "58103", "ND", []),
    ("burleigh@example.org", "Burleigh", "58501", "ND", ["human-trafficking"]),
    ("nocounty@example.org", None, "58201", "nd", ["veterans"]),
    ("mn@example.com", "Clay", "56560", "MN", []),
]


@pytest.fixture
def people(db, topics):
    """The PEOPLE above, all active; email -> id."""
    ids = {}
    with db.session() as session:
        for email, county, zip_code, state, slugs in PEOPLE:
            subscriber, _ = service.add_subscriber(session, email=email, county=county,
                                                   zip=zip_code, state=state, topics=slugs)
            ids[email] = subscriber.id
    return ids
