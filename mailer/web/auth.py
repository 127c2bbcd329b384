"""Dashboard users, their sessions, and API bearer tokens.

Passwords are hashed with Argon2id (argon2-cffi). A dashboard session is the user's id in the
signed session cookie (Starlette's SessionMiddleware, itsdangerous-signed, HttpOnly,
SameSite=Lax, Secure when the public URL is https). API tokens are random 256-bit strings shown
once; only their SHA-256 is stored, so a leaked database does not leak usable tokens.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mailer.errors import InvalidInput, NotFound, PolicyRefusal
from mailer.storage.base import utcnow
from mailer.web.models import ROLES, ApiToken, User

_hasher = PasswordHasher()
ADMIN = ROLES[-1]
MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "mlr_"


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so a wrong name costs as much as a wrong
    password (no user enumeration by timing). Made on first use: hashing takes a fifth of a
    second, which every ``mailer`` command would otherwise pay at start."""
    return _hasher.hash("not a real password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_strength(password: str) -> None:
    """Raises InvalidInput for a password too short to protect a mailing list."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")


def create_user(session: Session, name: str, role: str, password: str) -> User:
    """Add a dashboard user. Raises InvalidInput for a bad name, role or password."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("a user name must be 1 to 100 characters")
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    check_password_strength(password)
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise InvalidInput(f"a user named {name!r} already exists")
    user = User(name=name, role=role, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, name: str, password: str) -> User | None:
    """The user when name and password match, else None (same cost either way)."""
    user = session.scalar(select(User).where(User.name == name.strip()))
    stored = user.password_hash if user is not None and user.password_hash else _dummy_hash()
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.password_hash:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


# --- API tokens -------------------------------------------------------------------------

def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_api_token(session: Session, name: str, user_name: str | None = None) -> str:
    """Create a token and return it (the only time it exists in clear).

    Raises InvalidInput for a duplicate or empty name or a disabled user, NotFound for an
    unknown user.
    """
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("a token name must be 1 to 100 characters")
    if session.scalar(select(ApiToken).where(ApiToken.name == name)) is not None:
        raise InvalidInput(f"a token named {name!r} already exists")
    user_id = None
    if user_name is not None:
        user = get_user(session, user_name)
        if is_disabled(user):
            raise InvalidInput(f"{user.name} is disabled; set a new password for them first")
        user_id = user.id
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=token_hash(token), user_id=user_id))
    session.flush()
    return token


def list_api_tokens(session: Session) -> list[dict]:
    rows = session.execute(select(ApiToken, User.name).outerjoin(User, User.id == ApiToken.user_id)
                           .order_by(ApiToken.name))
    return [{"name": t.name, "user": user, "created_at": t.created_at.isoformat(),
             "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None}
            for t, user in rows]


def revoke_api_token(session: Session, name: str) -> None:
    """Delete the token called ``name``. Raises NotFound."""
    row = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if row is None:
        raise NotFound(f"no token named {name!r}")
    session.delete(row)


def set_password(session: Session, name: str, password: str) -> None:
    """Change a user's password (ending their sessions); a disabled user is enabled again.
    Raises NotFound, InvalidInput."""
    check_password_strength(password)
    user = get_user(session, name)
    user.password_hash = hash_password(password)


# --- managing users (the CLI's ``mailer users …`` and the dashboard's users page) ---------

def get_user(session: Session, name: str, *, for_update: bool = False) -> User:
    """Raises NotFound."""
    stmt = select(User).where(User.name == name)
    user = session.scalar(stmt.with_for_update() if for_update else stmt)
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


def is_disabled(user: User) -> bool:
    """A disabled user has no password: they cannot log in and their tokens are refused
    until an admin sets a new password."""
    return not user.password_hash


def list_users(session: Session) -> list[dict]:
    """Every user: id, name, role, whether disabled, when added (never a password hash)."""
    return [{"id": u.id, "name": u.name, "role": u.role, "disabled": is_disabled(u),
             "created_at": u.created_at.isoformat()}
            for u in session.scalars(select(User).order_by(User.name))]


def set_role(session: Session, name: str, role: str) -> User:
    """Give a user another role. Raises InvalidInput (unknown role), NotFound, PolicyRefusal
    (it would leave no admin who can log in)."""
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    user = get_user(session, name, for_update=True)
    if role != ADMIN:
        _keep_an_admin(session, user, "take the admin role from")
    user.role = role
    return user


def disable_user(session: Session, name: str) -> User:
    """Disable a user: their password is removed, so their sessions end at once, they cannot
    log in and their API tokens are refused (``set_password`` enables them again).
    Raises NotFound, PolicyRefusal (the last admin who can log in)."""
    user = get_user(session, name, for_update=True)
    _keep_an_admin(session, user, "disable")
    user.password_hash = None
    user.session_epoch = (user.session_epoch or 0) + 1
    return user


def remove_user(session: Session, name: str) -> None:
    """Delete a user and their API tokens (campaigns keep the name they were made by).
    Raises NotFound, PolicyRefusal (the last admin who can log in)."""
    user = get_user(session, name, for_update=True)
    _keep_an_admin(session, user, "remove")
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    session.delete(user)
    session.flush()


def _keep_an_admin(session: Session, user: User, move: str) -> None:
    """Refuse a move that would leave nobody able to manage users from the dashboard."""
    if user.role != ADMIN or is_disabled(user):
        return
    others = session.scalar(select(func.count()).select_from(User).where(
        User.role == ADMIN, User.id != user.id, User.password_hash.is_not(None))) or 0
    if not others:
        raise PolicyRefusal(f"cannot {move} {user.name}: they are the only admin who can "
                            "log in; make another admin first")


def api_identity(session: Session, token: str) -> tuple[ApiToken, User | None] | None:
    """The token row and its user for a presented bearer token, or None."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if row is None:
        return None
    row.last_used_at = utcnow()
    user = session.get(User, row.user_id) if row.user_id is not None else None
    return row, user


# --- request dependencies ---------------------------------------------------------------

class LoginRequired(Exception):
    """Raised by ``current_user``; the app answers with a redirect to the login page."""

    def __init__(self, next_path: str):
        self.next_path = next_path


def current_user(request: Request) -> User:
    """The logged-in dashboard user. Raises LoginRequired when there is none."""
    user_id = request.session.get("uid")
    user = None
    if isinstance(user_id, int):
        with request.app.state.db.session() as session:
            user = session.get(User, user_id)
    # A stale cookie (user deleted, or the password changed since) is a logged-out cookie.
    if (user is None or is_disabled(user)
            or request.session.get("pw") != _password_marker(user)):
        request.session.pop("uid", None)
        raise LoginRequired(request.url.path)
    return user


def log_in(request: Request, user: User) -> None:
    """Start a fresh session for ``user`` (a new CSRF secret too)."""
    request.session.clear()
    request.session["uid"] = user.id
    request.session["pw"] = _password_marker(user)


def log_out(request: Request) -> None:
    """End the session on the server too: the user's session epoch moves on, so this cookie,
    and any copy of it, no longer opens the dashboard (nor do the user's other sessions)."""
    user_id = request.session.get("uid")
    request.session.clear()
    if isinstance(user_id, int):
        with request.app.state.db.session() as session:
            user = session.get(User, user_id, with_for_update=True)
            if user is not None:
                user.session_epoch = (user.session_epoch or 0) + 1


def _password_marker(user: User) -> str:
    # Changing the password, or logging out, ends every session made before.
    seed = f"{user.password_hash or ''}:{user.session_epoch or 0}"
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Caller:
    """Who is acting: a dashboard user, or the user (else the name) behind an API token."""

    name: str
    role: str


def api_user(request: Request) -> Caller:
    """The caller of an API request.

    A token made with ``--user`` acts as that user with their role; a token without a user
    acts under its own name as admin (whoever can run ``mailer tokens create`` already holds
    the database, so an unbound token grants nothing more).
    Raises HTTPException(401) without a valid ``Authorization: Bearer`` token.
    """
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("a bearer token is required")
    with request.app.state.db.session() as session:
        found = api_identity(session, token)
        if found is None:
            raise _unauthorized("the token is not valid")
        row, user = found
        if row.user_id is not None and (user is None or is_disabled(user)):
            raise _unauthorized("the token's user is disabled")
        if user is not None:
            return Caller(user.name, user.role)
        return Caller(row.name, "admin")


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": 'Bearer realm="mailer"'})
