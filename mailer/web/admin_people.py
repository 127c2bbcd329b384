"""The dashboard's people pages under /admin: find subscribers (search and filters), one
person's page, unsubscribe or erase someone (asked first), import a CSV with the per-line
report the CLI prints, export a formula-safe CSV, and the topics people follow.

Each page calls the same action its CLI command calls; ``mailer.web.roles`` says who may.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy import func, select
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from mailer.campaigns import actions as ops
from mailer.delivery.list_import import import_list
from mailer.errors import InvalidInput, MailerError
from mailer.ingest.topics import import_topic_pages
from mailer.tracking.erasure import forget
from mailer.web.models import User
from mailer.web.pages import flash, flash_error, render
from mailer.web.params import Id, Page
from mailer.web.public import mail_queued
from mailer.web.roles import Permission
from mailer.web.staff import (
    Confirmation,
    ask,
    checked_form,
    needs_confirmation,
    see_other,
    staff_may,
    staff_user,
)
from subscribers.export import export_subscribers
from subscribers.models import STATUSES, StatusChange, Subscriber, SubscriberTopic, Topic
from subscribers.search import Search, needs_more, search
from subscribers.service import topic_slugs, unsubscribe

router = APIRouter(prefix="/admin", include_in_schema=False)
log = logging.getLogger("mailer.web")
PAGE_SIZE = 50
#: An upload larger than this is refused before it is read (a million rows is ~80 MB).
MAX_UPLOAD_BYTES = 256 * 1024 * 1024


@router.get("/subscribers", response_class=HTMLResponse)
def subscribers(request: Request, q: str = "", status: str = "", county: str = "",
                topic: str = "", page: Page = 1, user: User = Depends(staff_user)) -> Response:
    page = max(1, page)
    if status and status not in STATUSES:
        raise HTTPException(400, f"There is no status {status!r}.")
    wanted = Search(text=q, status=status or None, county=county or None,
                    topic=topic or None, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    with request.app.state.db.session() as session:
        rows = search(session, wanted)
        topics = list(session.scalars(select(Topic).order_by(Topic.name)))
    filters = {"q": q, "status": status, "county": county, "topic": topic}
    return render(request, "admin/subscribers.html", {
        "rows": rows[:PAGE_SIZE], "filters": filters, "statuses": STATUSES, "topics": topics,
        "page": page, "has_more": len(rows) > PAGE_SIZE, "needs_more": needs_more(q)})


@router.get("/subscribers/export.csv")
def subscribers_export(request: Request, query: str = "",
                       user: User = Depends(staff_may(Permission.CHANGE_LIST))) -> Response:
    """Everyone (or those matching a segment query) as CSV; cells that a spreadsheet would
    run as formulas are neutralized (``subscribers.export``)."""
    handle, name = tempfile.mkstemp(prefix="mailer-export-", suffix=".csv")
    os.close(handle)
    try:
        written = export_subscribers(request.app.state.db, name, query=query or None)
    except BaseException:
        os.unlink(name)
        raise
    log.info("%s exported %d subscribers", user.name, written)
    return FileResponse(name, media_type="text/csv; charset=utf-8",
                        filename="subscribers.csv", background=BackgroundTask(os.unlink, name))


@router.get("/subscribers/import", response_class=HTMLResponse)
def subscribers_import_form(request: Request,
                            user: User = Depends(staff_may(Permission.CHANGE_LIST))) -> Response:
    with request.app.state.db.session() as session:
        topics = list(session.scalars(select(Topic).order_by(Topic.name)))
    return render(request, "admin/subscribers_import.html", {"topics": topics})


@router.post("/subscribers/import", response_class=HTMLResponse)
async def subscribers_import(request: Request,
                             user: User = Depends(staff_may(Permission.CHANGE_LIST))) -> Response:
    """Import an uploaded CSV as ``mailer subscribers import`` does, then show its report."""
    _refuse_oversized(request)
    form = await checked_form(request)
    upload = form.get("file")
    if upload is None or not getattr(upload, "filename", ""):
        raise InvalidInput("choose a CSV file to import")
    path = await _saved_upload(upload, ".csv")
    try:
        report = await run_in_threadpool(
            import_list, request.app.state.db, request.app.state.settings,
            request.app.state.signer, path,
            topics=[str(t) for t in form.getlist("topics")],
            double_opt_in=form.get("double_opt_in") == "1",
            source=f"import {Path(upload.filename).name} (uploaded by {user.name})",
            send_now=False)  # the confirmations are queued: the page does not wait on them
    finally:
        path.unlink(missing_ok=True)
    mail_queued(request)
    return render(request, "admin/subscribers_import.html", {"report": report, "topics": []})


def _refuse_oversized(request: Request) -> None:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, f"The file is over {MAX_UPLOAD_BYTES // 2**20} MB.")


async def _saved_upload(upload, suffix: str) -> Path:
    """The uploaded file copied to a temporary path ending in ``suffix`` (the importers read
    files by path, and tell text, HTML and Markdown apart by the suffix)."""
    handle, name = tempfile.mkstemp(prefix="mailer-upload-", suffix=suffix)
    with os.fdopen(handle, "wb") as out:
        while chunk := await upload.read(1 << 20):
            out.write(chunk)
    return Path(name)


@router.get("/subscribers/{subscriber_id}", response_class=HTMLResponse)
def subscriber_detail(subscriber_id: Id, request: Request,
                      user: User = Depends(staff_user)) -> Response:
    with request.app.state.db.session() as session:
        person = _person(session, subscriber_id)
        history = list(session.scalars(select(StatusChange)
                                       .where(StatusChange.subscriber_id == person.id)
                                       .order_by(StatusChange.at, StatusChange.id)))
        deliveries = ops.timeline(session, person.email, request.app.state.settings)
        topics = topic_slugs(session, person)
    return render(request, "admin/subscriber.html", {
        "s": person, "history": history, "deliveries": deliveries, "topics": topics})


@router.post("/subscribers/{subscriber_id}/unsubscribe")
async def subscriber_unsubscribe(subscriber_id: Id, request: Request,
                                 user: User = Depends(staff_may(Permission.CHANGE_LIST))
                                 ) -> Response:
    """Staff unsubscribe someone who asked by phone or letter (recorded with who did it)."""
    form = await checked_form(request)
    with request.app.state.db.session() as session:
        person = _person(session, subscriber_id)
        if needs_confirmation(form):
            return ask(request, Confirmation(
                question=f"Unsubscribe {person.email}?",
                consequence="They get no more email from the office, and the address goes "
                            "on the suppression list so no import adds it back.",
                action=f"/admin/subscribers/{subscriber_id}/unsubscribe",
                button="Unsubscribe", back=f"/admin/subscribers/{subscriber_id}"))
        unsubscribe(session, person, cause=f"staff: {user.name} (dashboard)")
    flash(request, "Unsubscribed; the address is on the suppression list.", "success")
    return see_other(f"/admin/subscribers/{subscriber_id}")


@router.post("/subscribers/{subscriber_id}/forget")
async def subscriber_forget(subscriber_id: Id, request: Request,
                            user: User = Depends(staff_may(Permission.CHANGE_LIST))) -> Response:
    """Erase a person's data, as ``mailer subscribers forget`` does."""
    form = await checked_form(request)
    with request.app.state.db.session() as session:
        person = _person(session, subscriber_id)
        if needs_confirmation(form):
            return ask(request, Confirmation(
                question=f"Erase {person.email} and everything about them?",
                consequence="Their name, address, ZIP code, topics and delivery history are "
                            "deleted for good; only a hash of the address stays, so no "
                            "import adds them back.",
                action=f"/admin/subscribers/{subscriber_id}/forget",
                button="Erase this person", back=f"/admin/subscribers/{subscriber_id}"))
        forget(session, person, cause=f"staff: {user.name} (dashboard)")
    flash(request, "Erased; only a hash of the address stays, on the suppression list.",
          "success")
    return see_other("/admin/subscribers")


def _person(session, subscriber_id: int) -> Subscriber:
    person = session.get(Subscriber, subscriber_id)
    if person is None:
        raise HTTPException(404, "There is no such subscriber.")
    return person


# --- topics ---------------------------------------------------------------------------------

@router.get("/topics", response_class=HTMLResponse)
def topics(request: Request, user: User = Depends(staff_user)) -> Response:
    """Every topic with how many people follow it (any status)."""
    with request.app.state.db.session() as session:
        follows = dict(session.execute(
            select(SubscriberTopic.topic_id, func.count()).group_by(SubscriberTopic.topic_id)
        ).all())
        rows = [(t, follows.get(t.id, 0))
                for t in session.scalars(select(Topic).order_by(Topic.name))]
    return render(request, "admin/topics.html", {"rows": rows})


@router.post("/topics/import")
async def topics_import(request: Request,
                        user: User = Depends(staff_may(Permission.MANAGE_SOURCES))) -> Response:
    """An issue page (uploaded file or URL) becomes a topic, as ``mailer topics import``."""
    form = await checked_form(request)
    upload, url = form.get("file"), str(form.get("url") or "").strip()
    path = (await _saved_upload(upload, _suffix(upload.filename))
            if getattr(upload, "filename", "") else None)
    try:
        names = await run_in_threadpool(_import_topic, request, str(path) if path else url)
    except MailerError as exc:
        flash_error(request, exc)
    else:
        flash(request, f"Topic saved: {', '.join(names)}." if names
              else "Choose an issue page file or give its address.",
              "success" if names else "error")
    finally:
        if path:
            path.unlink(missing_ok=True)
    return see_other("/admin/topics")


def _import_topic(request: Request, source: str) -> list[str]:
    if not source:
        return []
    with request.app.state.db.session() as session:
        return [t.name for t in import_topic_pages(session, [source], request.app.state.settings)]


def _suffix(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    return suffix if suffix in (".txt", ".html", ".htm", ".md", ".markdown") else ".txt"
