"""Web safety nets: security headers, CSRF tokens and the subscribe honeypot.

CSRF uses the synchronizer-token pattern: a random secret lives in the signed session cookie
and every form carries it in a hidden ``csrf_token`` field; a POST whose field does not match
is refused with 403. The session cookie is SameSite=Lax as a second line of defence.

The rate limits (signups per network, signup emails per address, logins per network) are
counted in the database by ``mailer.storage.limits``, so every web process shares them; the
per-account login lockout is ``mailer.web.lockout``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping

from fastapi import HTTPException, Request

CSRF_FIELD = "csrf_token"
#: The subscribe form's trap: hidden from people (CSS + aria-hidden), filled in by bots.
HONEYPOT_FIELD = "website"

#: Our own pages: no inline script or style, nothing from other origins, never framed.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: Rendered emails (web view, previews, reports): their CSS is inline by design (email
#: clients need it), so inline styles are allowed, but no script runs and no form posts.
EMAIL_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
    "font-src https: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: The same, embeddable by our own dashboard (preview and report iframes).
EMAIL_FRAME_CSP = EMAIL_CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'")

BASE_HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"strict-origin-when-cross-origin",
    b"permissions-policy": b"camera=(), microphone=(), geolocation=(), interest-cohort=()",
    b"cross-origin-opener-policy": b"same-origin",
}


class SecurityHeadersMiddleware:
    """Adds security headers to every HTTP response (pure ASGI, so streaming still works).

    A route may set its own ``Content-Security-Policy`` or ``X-Frame-Options``; those win.
    ``hsts`` adds Strict-Transport-Security (only when the public URL is https).
    """

    def __init__(self, app, *, hsts: bool = False):
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = dict(BASE_HEADERS)
                extra[b"content-security-policy"] = PAGE_CSP.encode()
                extra[b"x-frame-options"] = b"DENY"
                if self.hsts:
                    extra[b"strict-transport-security"] = b"max-age=31536000; includeSubDomains"
                headers += [(k, v) for k, v in extra.items() if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def email_headers(*, framed: bool = False) -> dict[str, str]:
    """Headers for a response whose body is a rendered email (inline CSS, no scripts)."""
    return {
        "Content-Security-Policy": EMAIL_FRAME_CSP if framed else EMAIL_CSP,
        "X-Frame-Options": "SAMEORIGIN" if framed else "DENY",
    }


# --- CSRF -------------------------------------------------------------------------------

def csrf_token(request: Request) -> str:
    """The session's CSRF secret, created on first use (templates call this for every form)."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, form: Mapping[str, object]) -> None:
    """Raises HTTPException(403) unless the form's token matches the session's."""
    expected = request.session.get("csrf")
    given = form.get(CSRF_FIELD)
    if not expected or not isinstance(given, str) or not hmac.compare_digest(
        expected.encode(), given.encode()
    ):
        raise HTTPException(403, "This form has expired. Reload the page and try again.")


# --- abuse ------------------------------------------------------------------------------

def honeypot_filled(form: Mapping[str, object]) -> bool:
    value = form.get(HONEYPOT_FIELD)
    return isinstance(value, str) and value.strip() != ""


def client_ip(request: Request) -> str:
    """The peer address (uvicorn's --proxy-headers rewrites it from a trusted proxy)."""
    return request.client.host if request.client else "unknown"
