"""The constituents' pages: subscribe, confirm, preferences, unsubscribe, and the archive.

No page reveals whether an address is on the list: a signup answers the same page whatever
the address's state (only the email its owner receives differs). Links carry signed tokens
bound to one subscriber and one purpose; a forged, altered or expired token gets the same
short refusal page, with no detail.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mailer.campaigns.content import web_view
from mailer.campaigns.models import Campaign, CampaignStatus
from mailer.errors import InvalidInput
from mailer.ingest.models import Release
from mailer.tokens import InvalidToken
from mailer.web import constituents as c
from mailer.web.pages import flash, render
from mailer.web.params import Id, Page
from mailer.web.security import (
    check_csrf,
    client_ip,
    email_headers,
    honeypot_filled,
)
from subscribers.models import SUPPRESSED_STATUSES, Subscriber

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).resolve().parent / "static"
ARCHIVE_PAGE_SIZE = 25
ONE_CLICK = "One-Click"


class Links:
    """Signed links for one app (confirm, preferences, unsubscribe)."""

    def __init__(self, request: Request):
        self.signer = request.app.state.signer
        self.settings = request.app.state.settings
        self.base = self.settings.public_url
        self.office_name = self.settings.office_name

    def preferences(self, subscriber_id: int) -> str:
        return f"{self.base}/preferences/{self.signer.make(subscriber_id, 'preferences')}"


def _frequencies() -> list[tuple[str, str]]:
    return list(c.FREQUENCY_LABELS.items())


def _form_page(request: Request, session, values=None, errors=None, status_code=200):
    values = values or {"email": "", "name": "", "zip": ""}
    return render(request, "public/subscribe.html", {
        "topics": c.topic_choices(session), "chosen_topics": set(values.get("topics", [])),
        "frequencies": _frequencies(), "frequency": values.get("frequency", "immediate"),
        "values": values, "errors": errors or {},
    }, status_code=status_code)


@router.get("/", response_class=HTMLResponse)
def home() -> Response:
    return RedirectResponse("/subscribe", status_code=303)


@router.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for it on pages that name no icon (the archive's email web views)."""
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml",
                        headers={"Cache-Control": "public, max-age=86400"})


@router.get("/subscribe", response_class=HTMLResponse)
def subscribe_form(request: Request) -> Response:
    with request.app.state.db.session() as session:
        return _form_page(request, session)


@router.post("/subscribe", response_class=HTMLResponse)
async def subscribe(request: Request) -> Response:
    """Double opt-in signup. Answers the same "check your email" page for a new, pending,
    active or unsubscribed address; a bot that fills the honeypot gets it too. The email is
    queued in the signup's own transaction (``outgoing_mail``) and sent by the queue runner:
    the provider is never waited on here.

    The signup's rate-limit hits (its network; its address) are counted in that same
    transaction: one commit per signup, and a signup retried after a concurrent one with the
    same address counts them once."""
    form = await request.form()
    check_csrf(request, form)
    raw = {k: form.get(k) for k in ("email", "name", "zip", "frequency")}
    raw["topics"] = form.getlist("topics")
    for attempt in (1, 2):
        try:
            with request.app.state.db.session() as session:
                page = _signup(request, session, form, raw)
            break
        except IntegrityError:  # the same address signed up at the same moment: now known
            if attempt == 2:
                raise
    if page is not None:
        return page
    mail_queued(request)
    return _check_email(request)


def _signup(request: Request, session, form, raw: dict) -> Response | None:
    """One attempt at a signup in ``session``'s transaction; returns the page to answer
    when it is not the plain "check your email" one after a recorded signup. Raises
    HTTPException(429) past the per-network limit (nothing is then written)."""
    state = request.app.state
    topics = c.signup_topics(session)  # read before the first write, which locks SQLite
    ip = client_ip(request)
    decision = state.subscribe_limiter.hit(ip, within=session.connection())
    if not decision.allowed:
        raise HTTPException(429, "Too many signups from your network. Try again later.",
                            headers={"Retry-After": str(decision.retry_after)})
    if honeypot_filled(form):
        return _check_email(request)
    signup, errors = c.validate_signup(raw, set(topics))
    if errors:
        values = {**raw, "email": raw["email"] or "", "name": raw["name"] or "",
                  "zip": raw["zip"] or ""}
        return _form_page(request, session, values, errors, status_code=422)
    # Someone typing a victim's address again and again must not flood their inbox: past a
    # few emails per address per hour the signup is recorded but no further email is
    # queued (the page is the same either way).
    may_email = state.address_limiter.hit(signup.email, within=session.connection()).allowed
    c.subscribe(session, signup, ip=ip, links=Links(request), queue=may_email, topics=topics)
    return None


def mail_queued(request: Request) -> None:
    """Tell this process's queue runner (if it runs one) that mail is waiting: it sends at
    once instead of at its next poll."""
    request.app.state.mail_wake.set()


def _check_email(request: Request) -> Response:
    return render(request, "public/check_email.html")


def _subscriber(request: Request, session, token: str, purpose: str,
                max_age: int | None = None) -> Subscriber:
    """The subscriber a token was made for. Raises HTTPException(400) for a bad token and
    404 when the subscriber no longer exists (forgotten)."""
    try:
        subscriber_id = request.app.state.signer.read(token, purpose, max_age=max_age)
    except InvalidToken as exc:
        raise HTTPException(400, f"Sorry, {exc}. Use the newest link we emailed you.") from None
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise HTTPException(404, "This link is no longer in use.")
    return subscriber


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm(token: str, request: Request) -> Response:
    with request.app.state.db.session() as session:
        subscriber = _subscriber(request, session, token, "confirm", c.CONFIRM_MAX_AGE)
        queued = c.confirm(session, subscriber, links=Links(request))
        prefs = request.app.state.signer.make(subscriber.id, "preferences")
    if queued:
        mail_queued(request)
    return render(request, "public/confirmed.html", {"preferences_token": prefs})


@router.get("/preferences/{token}", response_class=HTMLResponse)
def preferences_form(token: str, request: Request) -> Response:
    with request.app.state.db.session() as session:
        subscriber = _subscriber(request, session, token, "preferences")
        return _preferences_page(request, session, subscriber, token)


def _preferences_page(request: Request, session, subscriber: Subscriber, token: str):
    return render(request, "public/preferences.html", {
        "token": token, "email": subscriber.email, "name": subscriber.name or "",
        "zip": subscriber.zip or "", "status": subscriber.status,
        "topics": c.topic_choices(session), "chosen_topics": c.followed_topics(session, subscriber),
        "frequencies": _frequencies(), "frequency": subscriber.frequency,
        "paused_until": c.paused_until(subscriber), "pause_days": c.PAUSE_DAYS,
        "unsubscribe_token": request.app.state.signer.make(subscriber.id, "unsubscribe"),
    })


@router.post("/preferences/{token}", response_class=HTMLResponse)
async def preferences_save(token: str, request: Request) -> Response:
    form = await request.form()
    check_csrf(request, form)
    try:
        with request.app.state.db.session() as session:
            subscriber = _subscriber(request, session, token, "preferences")
            known = {t.slug for t in c.topic_choices(session)}
            c.save_preferences(session, subscriber, form, known)
    except InvalidInput as exc:  # nothing was saved
        flash(request, f"Not saved: {exc}", "error")
    else:
        flash(request, "Your choices are saved.", "success")
    return RedirectResponse(f"/preferences/{token}", status_code=303)


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_form(token: str, request: Request) -> Response:
    """A page with a button: a GET never unsubscribes (mail scanners follow links)."""
    with request.app.state.db.session() as session:
        subscriber = _subscriber(request, session, token, "unsubscribe")
        return render(request, "public/unsubscribe.html", {
            "token": token, "masked_email": c.mask_email(subscriber.email),
            "preferences_token": request.app.state.signer.make(subscriber.id, "preferences"),
            "already": subscriber.status in SUPPRESSED_STATUSES,
        })


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
async def unsubscribe(token: str, request: Request) -> Response:
    """RFC 8058 one-click (``List-Unsubscribe=One-Click`` in the body, posted by mail
    providers without cookies) or the button on the unsubscribe page (CSRF-checked).

    The signed token is the authority here; answers 200 with no further step, also when the
    address was already unsubscribed or has since been forgotten.
    """
    form = await request.form()
    one_click = form.get("List-Unsubscribe") == ONE_CLICK
    if not one_click:
        check_csrf(request, form)
    with request.app.state.db.session() as session:
        try:
            subscriber = _subscriber(request, session, token, "unsubscribe")
        except HTTPException as exc:
            if exc.status_code != 404:
                raise
            return render(request, "public/unsubscribed.html", {"preferences_token": None})
        c.unsubscribe(session, subscriber, one_click=one_click)
        prefs = request.app.state.signer.make(subscriber.id, "preferences")
    return render(request, "public/unsubscribed.html", {"preferences_token": prefs})


# --- archive ------------------------------------------------------------------------------

def _sent_campaigns(session, limit: int, offset: int = 0) -> list[Campaign]:
    return list(session.scalars(
        select(Campaign).where(Campaign.status == CampaignStatus.SENT)
        .order_by(Campaign.finished_at.desc(), Campaign.id.desc()).limit(limit).offset(offset)
    ))


@router.get("/archive", response_class=HTMLResponse)
def archive(request: Request, page: Page = 1) -> Response:
    page = max(1, min(page, 10_000))
    with request.app.state.db.session() as session:
        rows = _sent_campaigns(session, ARCHIVE_PAGE_SIZE + 1, (page - 1) * ARCHIVE_PAGE_SIZE)
    items = [{"id": r.id, "subject": r.subject, "sent_at": r.finished_at or r.started_at}
             for r in rows[:ARCHIVE_PAGE_SIZE]]
    return render(request, "public/archive.html", {
        "items": items, "page": page, "has_more": len(rows) > ARCHIVE_PAGE_SIZE})


@router.get("/archive.rss")
def archive_rss(request: Request) -> Response:
    settings = request.app.state.settings
    with request.app.state.db.session() as session:
        rows = _sent_campaigns(session, 50)
        summaries = _summaries(session, rows)
    items = "".join(_rss_item(settings.public_url, r, summaries.get(r.release_id)) for r in rows)
    newest = rows[0].finished_at if rows and rows[0].finished_at else datetime.now(UTC)
    body = (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>{xml_escape(settings.office_name)} newsletters</title>"
        f"<link>{xml_escape(settings.public_url)}/archive</link>"
        f"<description>Newsletters sent by {xml_escape(settings.office_name)}</description>"
        f"<lastBuildDate>{format_datetime(newest)}</lastBuildDate>{items}</channel></rss>\n"
    )
    return Response(body, media_type="application/rss+xml; charset=utf-8")


def _summaries(session, rows: list[Campaign]) -> dict[int, str]:
    ids = [r.release_id for r in rows if r.release_id is not None]
    if not ids:
        return {}
    found = session.execute(select(Release.id, Release.subtitle, Release.body)
                            .where(Release.id.in_(ids)))
    return {rid: (subtitle or (body or "").strip().split("\n\n")[0])[:500]
            for rid, subtitle, body in found}


def _rss_item(base: str, campaign: Campaign, summary: str | None) -> str:
    link = f"{base}/archive/{campaign.id}"
    when = campaign.finished_at or campaign.started_at
    parts = [f"<title>{xml_escape(campaign.subject)}</title>", f"<link>{xml_escape(link)}</link>",
             f'<guid isPermaLink="true">{xml_escape(link)}</guid>']
    if when is not None:
        parts.append(f"<pubDate>{format_datetime(when)}</pubDate>")
    if summary:
        parts.append(f"<description>{xml_escape(summary)}</description>")
    return "<item>" + "".join(parts) + "</item>"


@router.get("/archive/{campaign_id}", response_class=HTMLResponse)
def archive_item(campaign_id: Id, request: Request) -> Response:
    """The web view of a sent newsletter (the "view in browser" link of every email)."""

    with request.app.state.db.session() as session:
        campaign = session.get(Campaign, campaign_id)
        # Recipients click "view in browser" while a send is still going out; a campaign
        # that never started, or was cancelled, stays private.
        if (campaign is None or campaign.started_at is None
                or campaign.status == CampaignStatus.CANCELLED):
            raise HTTPException(404, "There is no newsletter at this address.")
        html = web_view(session, campaign, request.app.state.settings)
    return HTMLResponse(html, headers=email_headers())
