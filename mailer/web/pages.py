"""What every server-rendered page shares: the Jinja2 environment (autoescaped), branding,
sessions, security headers, static files and the error pages.

``install(app, settings, secret)`` is called once by ``create_app``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from mailer.errors import InvalidInput, InvalidTransition, MailerError, NotFound, PolicyRefusal
from mailer.settings import TIME_FORMAT, Settings
from mailer.storage import outage
from mailer.storage.limits import SharedLimit
from mailer.web.auth import LoginRequired
from mailer.web.lockout import AccountLockout
from mailer.web.methods import allow_header
from mailer.web.roles import Permission, allows
from mailer.web.security import SecurityHeadersMiddleware, csrf_token

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "mailer_session"
SESSION_MAX_AGE = 12 * 3600
log = logging.getLogger("mailer.web")


def make_templates(settings: Settings) -> Jinja2Templates:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html", "xml"], default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(csrf_token=csrf_token, office_name=settings.office_name,
                       logo_url=settings.logo_url, public_url=settings.public_url, may=_may)
    # The product's one time format (``policy.format_local`` writes the same for the CLI and
    # for the reasons the product records), so everything on one page reads alike.
    env.filters["local"] = lambda value, fmt=TIME_FORMAT: _local(value, settings, fmt)
    return Jinja2Templates(env=env)


def _may(user, permission: str) -> bool:
    """``may(user, "MANAGE_ACCESS")`` in a template: whether to show a control, read from the
    one permission table (the route checks again when it is used)."""
    return user is not None and allows(user.role, Permission[permission])


#: How a calendar day without a time is shown (the date part of the ``local`` filter).
DAY_FORMAT = "%b %d, %Y"


def _local(value: date | str | None, settings: Settings, fmt: str) -> str:
    """A time as every page shows it, in the office's zone; takes an aware datetime or the
    ISO 8601 text report documents hold. A calendar day (a release's date, already the
    office's day) is shown as ``DAY_FORMAT``."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return value.strftime(DAY_FORMAT)
    return value.astimezone(settings.zone).strftime(fmt)


def render(request: Request, name: str, context: dict[str, Any] | None = None,
           status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Render a page template. Every template sees ``request`` and ``user`` (or None)."""
    ctx = {"user": getattr(request.state, "user", None), "flash": pop_flash(request)}
    ctx.update(context or {})
    response = request.app.state.templates.TemplateResponse(
        request, name, ctx, status_code=status_code, headers=headers)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def flash(request: Request, message: str, kind: str = "info") -> None:
    """A one-time message shown on the next page (after a POST-redirect-GET)."""
    request.session["flash"] = [kind, message]


def one_line(exc: Exception) -> str:
    """An error's message as one line, as every face shows a refusal."""
    return " ".join(str(exc).split())


def flash_error(request: Request, exc: Exception) -> None:
    """Show a refusal (a ``MailerError``) on the next page, as one line."""
    flash(request, one_line(exc), "error")


def pop_flash(request: Request) -> tuple[str, str] | None:
    if "session" not in request.scope:
        return None
    value = request.session.pop("flash", None)
    return tuple(value) if value else None


def session_secret(secret: str) -> str:
    """A key for the session cookie, distinct from the one that signs email tokens."""
    return hmac.new(secret.encode(), b"mailer.web.session", hashlib.sha256).hexdigest()


def install(app: FastAPI, settings: Settings, secret: str) -> None:
    """Add templates, sessions, security headers, static files and error handlers."""
    app.state.templates = make_templates(settings)
    db = app.state.db
    # Counted in the database, so every web process of the installation shares them.
    #: 5 signups per address per 10 minutes; enough for a family sharing one address.
    app.state.subscribe_limiter = SharedLimit(db, "subscribe", limit=5, window=600)
    #: At most 3 signup emails to one mailbox per hour, whoever asks.
    app.state.address_limiter = SharedLimit(db, "signup-email", limit=3, window=3600)
    #: 10 login attempts per address per 15 minutes.
    app.state.login_limiter = SharedLimit(db, "login", limit=10, window=900)
    #: 5 failed logins in a row for one user name lock it for a minute, then 2, 4, … 60.
    app.state.login_lockout = AccountLockout(db)
    https = settings.public_url.startswith("https://")
    app.add_middleware(SessionMiddleware, secret_key=session_secret(secret),
                       session_cookie=SESSION_COOKIE, max_age=SESSION_MAX_AGE,
                       same_site="lax", https_only=https)
    app.add_middleware(SecurityHeadersMiddleware, hsts=https)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _install_error_handlers(app)


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith(("/api/", "/webhooks/")) or path.endswith(".json")


def _error_response(request: Request, status: int, message: str,
                    headers: dict[str, str] | None = None) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": message}, status_code=status, headers=headers)
    return render(request, "error.html", {"status": status, "message": message},
                  status_code=status, headers=headers)


#: Seconds a client is asked to wait when the database is away or its disk is full.
OUTAGE_RETRY_AFTER = 30
STATUS_FOR = ((NotFound, 404), (PolicyRefusal, 403), (InvalidTransition, 409),
              (InvalidInput, 400), (MailerError, 400))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": "login required"}, status_code=401)
        # After login, come back to the page (a form's POST target cannot be revisited).
        next_path = exc.next_path if request.method == "GET" else "/admin/campaigns"
        return RedirectResponse(f"/admin/login?next={quote(next_path)}", status_code=303)

    @app.exception_handler(MailerError)
    async def mailer_error(request: Request, exc: MailerError) -> Response:
        status = next(code for kind, code in STATUS_FOR if isinstance(exc, kind))
        return _error_response(request, status, one_line(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "Request refused."
        headers = getattr(exc, "headers", None)
        if exc.status_code == 404 and message == "Not Found":
            message = "There is no page at this address."
        if exc.status_code == 405:
            # The router names one route's methods; the path may take more (see methods.py).
            allow = allow_header(request.app, request.scope)
            headers = {**(headers or {}), **allow}
            if request.method == "OPTIONS" and allow:
                return Response(status_code=204, headers=headers)
            message = "This address does not take that method."
        return _error_response(request, exc.status_code, message, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)
        if any(error.get("loc", ("",))[0] == "path" for error in exc.errors()):
            # A page address whose id is no id (past 64 bits, say) names no page.
            return _error_response(request, 404, "There is no page at this address.")
        return _error_response(request, 400, "The request was not understood.")

    @app.exception_handler(DataError)
    async def unstorable_value(request: Request, exc: DataError) -> Response:
        # The database refused a value taken from the request, as no bound declared in
        # mailer.web.params could: PostgreSQL refuses NUL in any text it stores or compares.
        # The client's input, not our fault: a 400, logged without the traceback.
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        log.warning("refused a value on %s %s: %s", request.method, request.url.path, reason)
        return _error_response(request, 400, "The request holds a value that cannot be "
                                             "stored or searched for (such as a NUL character).")

    @app.exception_handler(OperationalError)
    async def database_away(request: Request, exc: OperationalError) -> Response:
        # The database unreachable or its disk full: the request's transaction was rolled
        # back, so nothing is half-saved; a 503 with Retry-After says to come back, one line
        # in the log says why (no traceback: it is not our bug).
        if not outage.is_outage(exc):
            return await crash(request, exc)
        log.warning("%s %s: %s (%s)", request.method, request.url.path, outage.trouble(exc),
                    outage.reason(exc))
        what = ("The server's disk is full" if outage.is_disk_full(exc)
                else "The database is unavailable")
        return _error_response(request, 503, f"{what}, so nothing was saved. Try again in a "
                               "few minutes.", {"Retry-After": str(OUTAGE_RETRY_AFTER)})

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error_response(request, 500, "Something went wrong on our side. Try again.")


def _validation_detail(exc: RequestValidationError) -> str:
    """The API's one-line 422 detail: where the first error is, and what it is."""
    first = exc.errors()[0] if exc.errors() else {}
    loc = tuple(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        # The loc is ("body", offset): name the offset rather than show a bare number.
        reason = (first.get("ctx") or {}).get("error", "invalid JSON")
        return f"body: not JSON ({reason} at character {loc[-1] if loc else 0})"
    where = ".".join(str(p) for p in loc if p != "body") or ("body" if loc else "")
    return f"{where}: {first.get('msg', 'invalid')}" if where else "invalid request"


__all__ = ["HTTPException", "flash", "install", "render"]
