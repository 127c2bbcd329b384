"""Is this release already here? Identity by GUID, then link, then normalized content.

* ``guid`` (a feed item's GUID, a page's canonical URL, a Markdown file's ``guid``/``link``)
  is the identity that allows an *update*: same GUID, different content -> the release is
  updated in place.
* the same ``link`` under another GUID, or the same ``content_hash`` (title, date and body
  with case, punctuation, quotes and whitespace ignored) -> a duplicate, skipped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.ingest.models import Release
from mailer.ingest.parsed import ParsedRelease, normalize_for_hash


def content_hash(item: ParsedRelease) -> str:
    """SHA-256 of the normalized title, date and body. An item with no body (title-only feed
    entries) also hashes its link, so two such items with one title stay apart."""
    parts = [normalize_for_hash(item.title), item.date.isoformat() if item.date else "",
             normalize_for_hash(item.body)]
    if not parts[2]:
        parts.append(item.link or item.guid or "")
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


@dataclass
class Match:
    """What an incoming item corresponds to: ``how`` is "guid", "link" or "content"."""

    release: Release
    how: str


class Seen:
    """Lookups against the database plus the items of the current import (which are not
    all flushed yet), so one batch with the same item twice stores it once."""

    def __init__(self, session: Session):
        self.session = session
        self._by_guid: dict[str, Release] = {}
        self._by_link: dict[str, Release] = {}
        self._by_hash: dict[str, Release] = {}

    def find(self, item: ParsedRelease, digest: str) -> Match | None:
        if item.guid:
            found = self._by_guid.get(item.guid) or self._one(Release.guid == item.guid)
            if found is not None:
                return Match(found, "guid")
        if item.link:
            found = self._by_link.get(item.link) or self._one(Release.link == item.link)
            if found is not None:
                return Match(found, "link")
        found = self._by_hash.get(digest) or self._one(Release.content_hash == digest)
        return Match(found, "content") if found is not None else None

    def remember(self, release: Release) -> None:
        if release.guid:
            self._by_guid[release.guid] = release
        if release.link:
            self._by_link[release.link] = release
        self._by_hash[release.content_hash] = release

    def hash_taken(self, digest: str, by_other_than: Release) -> bool:
        found = self._by_hash.get(digest) or self._one(Release.content_hash == digest)
        return found is not None and found is not by_other_than

    def _one(self, condition) -> Release | None:
        return self.session.scalars(select(Release).where(condition).limit(1)).first()
