"""Who may use the dashboard and the API, managed from the dashboard (admins only): add users,
set their roles, reset passwords, disable or remove them; create API tokens (the secret is
shown once, on the page that answers the creation) and revoke them (asked first).

Every page calls the same function as its ``mailer users …`` / ``mailer tokens …`` command
(``mailer.web.auth``). Passwords are only ever hashed: never logged, never put back in a
form, not even when the form is shown again with an error.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from mailer.errors import InvalidInput, MailerError
from mailer.web import auth
from mailer.web.models import ROLES, User
from mailer.web.pages import flash, flash_error, one_line, render
from mailer.web.params import Id
from mailer.web.roles import Permission
from mailer.web.staff import (
    Confirmation,
    ask,
    checked_form,
    needs_confirmation,
    see_other,
    staff_may,
)

router = APIRouter(prefix="/admin", include_in_schema=False)
log = logging.getLogger("mailer.web")
ADMIN_ONLY = Depends(staff_may(Permission.MANAGE_ACCESS))


# --- users ----------------------------------------------------------------------------------

@router.get("/users", response_class=HTMLResponse)
def users(request: Request, user: User = ADMIN_ONLY) -> Response:
    return _users_page(request)


def _users_page(request: Request, values: dict[str, str] | None = None,
                error: str | None = None, status_code: int = 200) -> Response:
    with request.app.state.db.session() as session:
        rows = auth.list_users(session)
    return render(request, "admin/users.html", {
        "rows": rows, "roles": ROLES, "values": values or {"name": "", "role": "author"},
        "error": error, "min_password": auth.MIN_PASSWORD_LENGTH}, status_code=status_code)


@router.post("/users", response_class=HTMLResponse)
async def user_add(request: Request, user: User = ADMIN_ONLY) -> Response:
    """Add a user, as ``mailer users add NAME --role R`` does."""
    form = await checked_form(request)
    values = {"name": str(form.get("name") or ""), "role": str(form.get("role") or "")}
    try:
        with request.app.state.db.session() as session:
            added = auth.create_user(session, values["name"], values["role"],
                                     str(form.get("password") or ""))
            name, role = added.name, added.role
    except MailerError as exc:
        return _users_page(request, values, one_line(exc), status_code=422)
    log.info("%s added user %s (%s)", user.name, name, role)
    flash(request, f"User {name} added ({role}).", "success")
    return see_other("/admin/users")


@router.get("/users/{user_id}", response_class=HTMLResponse)
def user_detail(user_id: Id, request: Request, user: User = ADMIN_ONLY) -> Response:
    with request.app.state.db.session() as session:
        person = _person(session, user_id)
        tokens = [t for t in auth.list_api_tokens(session) if t["user"] == person.name]
        disabled = auth.is_disabled(person)
    return render(request, "admin/user.html", {
        "person": person, "disabled": disabled, "tokens": tokens, "roles": ROLES,
        "min_password": auth.MIN_PASSWORD_LENGTH})


@router.post("/users/{user_id}/role")
async def user_role(user_id: Id, request: Request, user: User = ADMIN_ONLY) -> Response:
    form = await checked_form(request)
    role = str(form.get("role") or "")
    return _act(request, user_id, lambda s, name: auth.set_role(s, name, role),
                lambda name: f"{name} is now an {role}.", user)


@router.post("/users/{user_id}/password")
async def user_password(user_id: Id, request: Request, user: User = ADMIN_ONLY) -> Response:
    """Set a new password (the user's sessions end; a disabled user is enabled again)."""
    form = await checked_form(request)
    password = str(form.get("password") or "")
    return _act(request, user_id, lambda s, name: auth.set_password(s, name, password),
                lambda name: f"Password changed for {name}; their open sessions ended.", user)


@router.post("/users/{user_id}/disable")
async def user_disable(user_id: Id, request: Request, user: User = ADMIN_ONLY) -> Response:
    await checked_form(request)
    return _act(request, user_id, auth.disable_user,
                lambda name: f"{name} is disabled: they cannot log in and their API tokens "
                             "are refused. Set a new password to enable them again.", user)


@router.post("/users/{user_id}/remove", response_class=HTMLResponse)
async def user_remove(user_id: Id, request: Request, user: User = ADMIN_ONLY) -> Response:
    form = await checked_form(request)
    if needs_confirmation(form):
        with request.app.state.db.session() as session:
            person = _person(session, user_id)
            name = person.name
        return ask(request, Confirmation(
            question=f"Remove the user {name}?",
            consequence=f"{name} can no longer log in, and every API token made for them "
                        "stops working. Campaigns they wrote keep their name.",
            action=f"/admin/users/{user_id}/remove", button="Remove user",
            back=f"/admin/users/{user_id}"))
    try:
        with request.app.state.db.session() as session:
            name = _person(session, user_id).name
            auth.remove_user(session, name)
    except MailerError as exc:
        flash_error(request, exc)
        return see_other(f"/admin/users/{user_id}")
    log.info("%s removed user %s", user.name, name)
    flash(request, f"User {name} removed.", "success")
    return see_other("/admin/users")


def _act(request: Request, user_id: int, action, done, by: User) -> Response:
    """Run ``action(session, name)`` on the user, then back to their page with what happened
    (or the one-line reason it was refused)."""
    try:
        with request.app.state.db.session() as session:
            name = _person(session, user_id).name
            action(session, name)
    except MailerError as exc:
        flash_error(request, exc)
    else:
        log.info("%s changed user %s (%s)", by.name, name, request.url.path.rsplit("/", 1)[-1])
        flash(request, done(name), "success")
    return see_other(f"/admin/users/{user_id}")


def _person(session, user_id: int) -> User:
    person = session.get(User, user_id)
    if person is None:
        raise HTTPException(404, "There is no such user.")
    return person


# --- API tokens -----------------------------------------------------------------------------

@router.get("/tokens", response_class=HTMLResponse)
def tokens(request: Request, user: User = ADMIN_ONLY) -> Response:
    return _tokens_page(request, user)


def _tokens_page(request: Request, user: User, *, created: tuple[str, str] | None = None,
                 values: dict[str, str] | None = None, error: str | None = None,
                 status_code: int = 200) -> Response:
    with request.app.state.db.session() as session:
        rows = auth.list_api_tokens(session)
        names = [row["name"] for row in auth.list_users(session) if not row["disabled"]]
    return render(request, "admin/tokens.html", {
        "rows": rows, "users": names, "created": created, "error": error,
        "values": values or {"name": "", "user": user.name}}, status_code=status_code)


@router.post("/tokens", response_class=HTMLResponse)
async def token_create(request: Request, user: User = ADMIN_ONLY) -> Response:
    """Create a token acting as a user, as ``mailer tokens create NAME --user U`` does. The
    answer is the one page that ever shows the token (not a redirect: nothing keeps it)."""
    form = await checked_form(request)
    values = {"name": str(form.get("name") or ""), "user": str(form.get("user") or "")}
    try:
        with request.app.state.db.session() as session:
            if not values["user"]:
                raise InvalidInput("choose the user the token acts as")
            secret = auth.create_api_token(session, values["name"], values["user"])
    except MailerError as exc:
        return _tokens_page(request, user, values=values, error=one_line(exc),
                            status_code=422)
    log.info("%s created API token %s for %s", user.name, values["name"].strip(),
             values["user"])
    return _tokens_page(request, user, created=(values["name"].strip(), secret),
                        status_code=201)


@router.post("/tokens/revoke", response_class=HTMLResponse)
async def token_revoke(request: Request, user: User = ADMIN_ONLY) -> Response:
    form = await checked_form(request)
    name = str(form.get("name") or "")
    if needs_confirmation(form):
        return ask(request, Confirmation(
            question=f"Revoke the API token “{name}”?",
            consequence="Every script using it is refused from now on (401); this cannot "
                        "be undone, only replaced by a new token.",
            action="/admin/tokens/revoke", button="Revoke token", back="/admin/tokens",
            fields={"name": name}))
    try:
        with request.app.state.db.session() as session:
            auth.revoke_api_token(session, name)
    except MailerError as exc:
        flash_error(request, exc)
    else:
        log.info("%s revoked API token %s", user.name, name)
        flash(request, f"Token “{name}” revoked.", "success")
    return see_other("/admin/tokens")
