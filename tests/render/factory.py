"""Rows for rendering tests: the seed release and a campaign for it."""

from __future__ import annotations

import hashlib

from mailer.campaigns.models import Campaign
from mailer.ingest.models import Release
from mailer.render.sample import seed_release


def add_release(session, **fields) -> Release:
    seed = seed_release()
    values = {"title": seed.title, "subtitle": seed.subtitle, "date": seed.date,
              "dateline": seed.dateline, "body": seed.body, "contact": seed.contact,
              "link": seed.link, "source": "mailer/data/release_heitkamp_2014-05-09.txt"}
    values.update(fields)
    digest = hashlib.sha256(repr(sorted(values.items())).encode()).hexdigest()
    release = Release(content_hash=digest, **values)
    session.add(release)
    session.flush()
    return release


def add_campaign(session, release: Release, **fields) -> Campaign:
    values = {"kind": "release", "release_id": release.id, "query": 'topic = "human-trafficking"',
              "template": "press_release", "subject": release.title, "created_by": "author"}
    values.update(fields)
    campaign = Campaign(**values)
    session.add(campaign)
    session.flush()
    return campaign
