"""The press office's dashboard under /admin: campaigns (create, preview, test, approve,
schedule, pause/resume/cancel, report) and feeds.

Every page needs a logged-in user (anyone else is redirected to the login page); every form
carries a CSRF token; every action is done as the logged-in user, so "approve" is refused to
a campaign's own author like it is on the command line.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime

from fastapi import APIRouter, BackgroundTasks, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from markupsafe import escape
from sqlalchemy import select

from mailer.campaigns import actions as ops
from mailer.campaigns.models import Campaign, CampaignLog, CampaignStatus
from mailer.campaigns.service import PREHEADER_MAX, get_campaign
from mailer.delivery import records
from mailer.delivery.audience import audience_count
from mailer.errors import InvalidInput, MailerError
from mailer.ingest.feeds import add_feed
from mailer.ingest.models import Feed, Release
from mailer.render.environment import release_templates
from mailer.scheduling.policy import format_local
from mailer.storage.base import utcnow
from mailer.tracking.summary import summaries
from mailer.web.auth import (
    authenticate,
    log_in,
    log_out,
)
from mailer.web.models import User
from mailer.web.pages import flash, flash_error, render
from mailer.web.params import Id, Page, as_id
from mailer.web.recounts import recount_after
from mailer.web.roles import Permission, allows
from mailer.web.security import client_ip, email_headers
from mailer.web.staff import checked_form, see_other, staff_may, staff_user
from subscribers.models import Segment, Topic

router = APIRouter(prefix="/admin", include_in_schema=False)
log = logging.getLogger("mailer.web")
PAGE_SIZE = 50
#: Campaigns per list page: each one's numbers are counted when the page is shown.
CAMPAIGN_PAGE = 25
ACTIVE_STATES = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED)


# --- login ----------------------------------------------------------------------------------

@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/admin/campaigns") -> Response:
    return render(request, "admin/login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Log in. Refused, with the same answer whether or not the name exists: a name locked
    after repeated failures (``mailer.web.lockout``; the page says until when), and any name
    from an address past the login rate limit."""
    form = await checked_form(request)
    next_path = _safe_next(str(form.get("next") or ""))
    name, password = str(form.get("name") or ""), str(form.get("password") or "")
    lockout = request.app.state.login_lockout
    locked = lockout.locked_until(name)
    if locked is not None:
        return _locked_page(request, next_path, name, locked)
    user = None
    if request.app.state.login_limiter.hit(client_ip(request)).allowed:
        with request.app.state.db.session() as session:
            user = authenticate(session, name, password)
        if user is None:
            locked = lockout.failed(name)
    if user is None:
        # The name is logged (who is being tried), never the password.
        log.warning("dashboard login refused for %r from %s", name[:100], client_ip(request))
        if locked is not None:
            return _locked_page(request, next_path, name, locked)
        return render(request, "admin/login.html", {
            "next": next_path, "name": name,
            "error": "That name and password do not match, or there were too many tries."},
            status_code=401)
    lockout.succeeded(name)
    log_in(request, user)
    log.info("dashboard login: %s from %s", user.name, client_ip(request))
    return see_other(next_path)


def _locked_page(request: Request, next_path: str, name: str, until: datetime) -> Response:
    """429 naming when to try again, in the office's zone (the same for any name)."""
    wait = max(1, math.ceil(until.timestamp() - request.app.state.login_lockout.clock()))
    when = format_local(until, request.app.state.settings)
    return render(request, "admin/login.html", {
        "next": next_path, "name": name,
        "error": f"Too many failed logins with this name: it is locked until {when}. "
                 "Try again then."},
        status_code=429, headers={"Retry-After": str(wait)})


def _safe_next(path: str) -> str:
    # Only our own dashboard paths: never an open redirect to another site.
    if path.startswith("/admin/") and not path.startswith("/admin/login") and "//" not in path:
        return path
    return "/admin/campaigns"


@router.post("/logout")
async def logout(request: Request) -> Response:
    await checked_form(request)
    log_out(request)
    return see_other("/admin/login")


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
def home(user: User = Depends(staff_user)) -> Response:
    return see_other("/admin/campaigns")


# --- campaigns ------------------------------------------------------------------------------

@router.get("/campaigns", response_class=HTMLResponse)
def campaigns(request: Request, background: BackgroundTasks, page: Page = 1,
              user: User = Depends(staff_user)) -> Response:
    """Newest first, a page at a time, each with its progress and its delivery numbers."""
    page = max(1, page)
    with request.app.state.db.session() as session:
        rows = list(session.scalars(select(Campaign).order_by(Campaign.id.desc())
                                    .limit(CAMPAIGN_PAGE + 1).offset((page - 1) * CAMPAIGN_PAGE)))
        shown = rows[:CAMPAIGN_PAGE]
        counts = records.counts_by_campaign(session,
                                            [c.id for c in shown if ops.needs_counting(c)])
        numbers, stale = summaries(session, shown, request.app.state.settings)
    for campaign_id in stale:
        background.add_task(ops.refresh_report, request.app.state.db, campaign_id,
                            request.app.state.settings)
    items = [(c, ops.progress(c, counts.get(c.id, {})), numbers[c.id]) for c in shown]
    return render(request, "admin/campaigns.html", {
        "items": items, "page": page, "has_more": len(rows) > CAMPAIGN_PAGE})


@router.get("/campaigns/progress.json")
def campaigns_progress(request: Request, ids: str = "",
                       user: User = Depends(staff_user)) -> Response:
    """Live progress for the campaigns list (polled by admin.js)."""
    wanted = [i for i in map(as_id, ids.split(",")[:200]) if i is not None]
    with request.app.state.db.session() as session:
        rows = list(session.scalars(select(Campaign).where(Campaign.id.in_(wanted))))
        counts = records.counts_by_campaign(session, [c.id for c in rows])
    return JSONResponse({"campaigns": [ops.progress(c, counts[c.id]) for c in rows]},
                        headers={"Cache-Control": "no-store"})


@router.get("/campaigns/new", response_class=HTMLResponse)
def campaign_new(request: Request, release_id: Id | None = None,
                 user: User = Depends(staff_user)) -> Response:
    with request.app.state.db.session() as session:
        return _new_page(request, session, {"release_id": release_id})


def _new_page(request, session, values, error: str | None = None, status_code: int = 200):
    releases = list(session.scalars(select(Release).order_by(Release.id.desc()).limit(100)))
    segments = list(session.scalars(select(Segment).order_by(Segment.name)))
    topics = list(session.scalars(select(Topic).order_by(Topic.name)))
    return render(request, "admin/campaign_new.html", {
        "releases": releases, "segments": segments, "topics": topics, "values": values,
        "templates": release_templates(request.app.state.settings),
        "error": error, "preheader_max": PREHEADER_MAX,
    }, status_code=status_code)


@router.post("/campaigns/new", response_class=HTMLResponse)
async def campaign_create(request: Request,
                          user: User = Depends(staff_may(Permission.EDIT_DRAFTS))) -> Response:
    form = await checked_form(request)
    values = {k: str(form.get(k) or "").strip()
              for k in ("release_id", "segment", "query", "subject", "template", "preheader",
                        "intro")}
    with request.app.state.db.session() as session:
        try:
            release_id = as_id(values["release_id"])
            if release_id is None:
                raise InvalidInput("choose a release")
            campaign = ops.create(session, release_id=release_id,
                                  segment=values["segment"], query=values["query"],
                                  subject=values["subject"], template=values["template"],
                                  by=user.name, settings=request.app.state.settings,
                                  preheader=values["preheader"], intro=values["intro"])
            campaign_id = campaign.id
        except MailerError as exc:
            session.rollback()
            return _new_page(request, session, values, str(exc), status_code=422)
    flash(request, f"Campaign {campaign_id} created as a draft.", "success")
    return see_other(f"/admin/campaigns/{campaign_id}")


@router.get("/segments/count")
def segment_count(request: Request, query: str = "", segment: str = "",
                  user: User = Depends(staff_user)) -> Response:
    """The live audience count for the segment builder: ``{"count", "now", "in_digests"}``
    (``audience_count``: all it reaches, who gets a release as it goes out, who gets it in
    their digest), ``{"count": null}`` for nothing asked, or ``{"error"}``."""

    try:
        with request.app.state.db.session() as session:
            if segment:
                reach = audience_count(session, segment=segment)
            elif query.strip():
                reach = audience_count(session, query=query)
            else:
                return JSONResponse({"count": None})
    except MailerError as exc:
        return JSONResponse({"error": str(exc)}, status_code=200)
    return JSONResponse(reach)


def _campaign(session, campaign_id: int, *, for_update: bool = False) -> Campaign:
    return get_campaign(session, campaign_id, for_update=for_update)


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_detail(campaign_id: Id, request: Request,
                    user: User = Depends(staff_user)) -> Response:
    with request.app.state.db.session() as session:
        campaign = _campaign(session, campaign_id)
        # A sent campaign's progress is its recipient count: no need to read its rows.
        counts = (records.counts_by_campaign(session, [campaign.id])[campaign.id]
                  if ops.needs_counting(campaign) else {})
        log = list(session.scalars(select(CampaignLog).where(CampaignLog.campaign_id == campaign.id)
                                   .order_by(CampaignLog.at, CampaignLog.id)))
        release = session.get(Release, campaign.release_id) if campaign.release_id else None
        segment = session.get(Segment, campaign.segment_id) if campaign.segment_id else None
        audience = (ops.audience(session, campaign, request.app.state.settings)
                    if not counts else None)
        retryable = ops.retryable(session, campaign)
    can_manage = allows(user.role, Permission.SCHEDULE)
    return recount_after(render(request, "admin/campaign.html", {
        "c": campaign, "progress": ops.progress(campaign, counts), "log": log,
        "release": release, "segment": segment, "audience": audience,
        "can_manage": can_manage, "retryable": retryable,
        "can_approve": can_manage and campaign.status == CampaignStatus.DRAFT and (
            campaign.created_by != user.name or not request.app.state.settings.require_approval),
        "zone": request.app.state.settings.timezone,
    }), request.app.state.db, audience)


@router.get("/campaigns/{campaign_id}/preview.html", response_class=HTMLResponse)
def campaign_preview(campaign_id: Id, request: Request,
                     user: User = Depends(staff_user)) -> Response:
    """The email as a sample recipient sees it; framed by the campaign page."""
    try:
        with request.app.state.db.session() as session:
            campaign = _campaign(session, campaign_id)
            html = ops.preview_html(session, campaign, request.app.state.settings,
                                    request.app.state.signer)
    except MailerError as exc:  # e.g. a broken template: say so inside the frame
        html = _frame_message(f"This campaign cannot be previewed: {exc}")
    return HTMLResponse(html, headers={**email_headers(framed=True), "Cache-Control": "no-store"})


def _frame_message(text: str) -> str:
    return ('<!doctype html><meta charset="utf-8"><p style="font:16px sans-serif;'
            f'color:#b3261e;padding:1rem">{escape(" ".join(text.split()))}</p>')


@router.get("/campaigns/{campaign_id}/report", response_class=HTMLResponse)
def campaign_report(campaign_id: Id, request: Request, background: BackgroundTasks,
                    user: User = Depends(staff_user)) -> Response:
    """The report page: status counts and the charts' frame. A big campaign shows its last
    snapshot (with the time it was counted) and refreshes it after answering."""
    settings = request.app.state.settings
    with request.app.state.db.session() as session:
        campaign = _campaign(session, campaign_id)
        shown = ops.report_view(session, campaign, settings)
    _refresh_later(request, background, campaign_id, shown)
    return render(request, "admin/report.html", {"c": campaign, "report": shown.document},
                  headers=None if shown.document else {"Refresh": "3"})


@router.get("/campaigns/{campaign_id}/report.html", response_class=HTMLResponse)
def campaign_report_frame(campaign_id: Id, request: Request, background: BackgroundTasks,
                          user: User = Depends(staff_user)) -> Response:
    try:
        with request.app.state.db.session() as session:
            campaign = _campaign(session, campaign_id)
            shown = ops.report_view(session, campaign, request.app.state.settings)
            html = (ops.report_page(shown.document) if shown.document else
                    _frame_message("The report is being counted; it appears here in a moment."))
    except MailerError as exc:
        html = _frame_message(f"The report cannot be shown: {exc}")
        shown = None
    if shown is not None:
        _refresh_later(request, background, campaign_id, shown)
    headers = {**email_headers(framed=True), "Cache-Control": "no-store"}
    if shown is not None and not shown.document:
        headers["Refresh"] = "3"
    return HTMLResponse(html, headers=headers)


def _refresh_later(request: Request, background: BackgroundTasks, campaign_id: int,
                   shown) -> None:
    if shown.refresh:
        background.add_task(ops.refresh_report, request.app.state.db, campaign_id,
                            request.app.state.settings)


# --- feeds (the release pages are in mailer.web.admin_releases) -----------------------------

@router.get("/feeds", response_class=HTMLResponse)
def feeds(request: Request, user: User = Depends(staff_user)) -> Response:
    with request.app.state.db.session() as session:
        rows = list(session.scalars(select(Feed).order_by(Feed.id)))
    return render(request, "admin/feeds.html", {"rows": rows, "now": utcnow()})


@router.post("/feeds")
async def feed_add(request: Request,
                   user: User = Depends(staff_may(Permission.MANAGE_SOURCES))) -> Response:
    """Watch a feed: fetched once now (its items become releases), then polled."""
    form = await checked_form(request)

    try:
        with request.app.state.db.session() as session:
            _feed, report = add_feed(session, str(form.get("url") or ""),
                                    request.app.state.settings, auto=form.get("auto") == "1")
            created = len(report.created)
    except MailerError as exc:
        flash_error(request, exc)
    else:
        flash(request, f"Feed added; {created} new release{'s' if created != 1 else ''}.",
              "success")
    return see_other("/admin/feeds")
