"""What every dashboard page shares: the logged-in user, checked forms, permission checks and
the confirmation step.

Confirmation works without JavaScript: a form whose action sends, cancels, unsubscribes or
erases posts first without ``confirmed=yes``; the handler then answers with a page that
names what will happen ("Send to 18,204 people now?") and carries the same fields plus
``confirmed=yes``. Only that second post acts. ``needs_confirmation`` is the one test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response

from mailer.web.auth import current_user
from mailer.web.models import User
from mailer.web.pages import render
from mailer.web.roles import Permission, check
from mailer.web.security import check_csrf

CONFIRMED = "yes"


def staff_user(request: Request, user: User = Depends(current_user)) -> User:
    """The logged-in user (anyone else is sent to the login page), shown in the page frame."""
    request.state.user = user
    return user


def staff_may(permission: Permission):
    """A dependency: the logged-in user, refused with 403 unless their role has
    ``permission`` (``mailer.web.roles`` decides)."""

    def dependency(user: User = Depends(staff_user)) -> User:
        check(user, permission)
        return user

    dependency.permission = permission  # read by the tests that walk every route
    return dependency


async def checked_form(request: Request):
    """The posted form, after its CSRF token is checked (403 otherwise)."""
    form = await request.form()
    check_csrf(request, form)
    return form


def see_other(path: str) -> RedirectResponse:
    """Post/redirect/get: the browser lands on ``path`` with a GET."""
    return RedirectResponse(path, status_code=303)


@dataclass
class Confirmation:
    """The page that asks before an action runs."""

    question: str  # "Send to 18,204 people now?"
    consequence: str  # what happens, in a sentence
    action: str  # where the confirmed form posts
    button: str  # "Send now"
    back: str  # where "Go back" leads
    fields: dict[str, str] = field(default_factory=dict)  # posted again with the answer
    danger: bool = True


def needs_confirmation(form: Mapping[str, object]) -> bool:
    """True until the person has answered the confirmation page."""
    return form.get("confirmed") != CONFIRMED


def ask(request: Request, confirmation: Confirmation) -> Response:
    """Answer with the confirmation page (200: nothing was done yet)."""
    return render(request, "admin/confirm.html", {"ask": confirmation})
