"""Releases (and the topics they are tagged with) and watched feeds. Topics themselves are
what constituents follow, so their table lives in ``subscribers.models``."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailer.storage.base import Base, JSONType, UTCDateTime, utcnow
from subscribers.models import Topic


class Feed(Base):
    """An RSS/Atom feed the scheduler polls for new releases."""

    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    title: Mapped[str | None] = mapped_column(String(500))
    auto: Mapped[bool] = mapped_column(Boolean, default=False)
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Release(Base):
    """One press release, however it arrived. ``body`` holds paragraphs separated by a blank
    line; ``body_html`` (optional) is sanitized HTML for email."""

    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(1000))
    subtitle: Mapped[str | None] = mapped_column(String(1000))
    date: Mapped[date | None] = mapped_column(Date)
    dateline: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)
    contact: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(2000))
    link: Mapped[str | None] = mapped_column(String(2000))
    guid: Mapped[str | None] = mapped_column(String(2000), unique=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    feed_id: Mapped[int | None] = mapped_column(ForeignKey("feeds.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    topic_links: Mapped[list[ReleaseTopic]] = relationship(
        back_populates="release", cascade="all, delete-orphan"
    )


class ReleaseTopic(Base):
    """A release's tag. ``origin`` is ``auto`` (scored), ``manual`` (added by staff) or
    ``removed`` (staff took an automatic tag off; the tagger must not add it back)."""

    __tablename__ = "release_topics"

    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True
    )
    topic_id: Mapped[int] = mapped_column(
        ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    score: Mapped[float] = mapped_column(Float, default=0.0)
    matched: Mapped[dict] = mapped_column(JSONType, default=dict)
    origin: Mapped[str] = mapped_column(String(20), default="auto")

    release: Mapped[Release] = relationship(back_populates="topic_links")
    topic: Mapped[Topic] = relationship()
