"""Dashboard users, API tokens and failed-login lockouts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mailer.storage.base import Base, UTCDateTime, utcnow

ROLES = ("author", "approver", "admin")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    #: Moves on at every log out: sessions made before it no longer open the dashboard.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token for ``/api``; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LoginLockout(Base):
    """Failed logins in a row for one typed user name, existing or not (``mailer.web.lockout``).

    Keyed by the SHA-256 of the name as typed (trimmed, case-folded): an unknown name is
    counted and locked exactly like a real one, so the lockout says nothing about who exists.
    """

    __tablename__ = "login_lockouts"

    name_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    #: The newest failure; failures older than the lockout's ``forget_after`` are forgotten.
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    #: Until when every login with this name is refused unchecked (None: never locked).
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
