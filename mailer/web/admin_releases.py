"""The dashboard's release pages under /admin: the list (newest first, search, topic filter,
25 to a page), importing an uploaded file or a page or feed address with the per-source
report, and one release's page with its tags (add, remove) and campaigns.

Importing calls ``mailer.ingest.actions.import_releases`` and tagging ``set_release_tag``:
the actions ``mailer releases import|tag|untag`` call. ``mailer.web.roles`` says who may.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from mailer.errors import InvalidInput, NotFound
from mailer.ingest.actions import import_releases, set_release_tag
from mailer.ingest.service import get_release, list_releases, release_detail
from mailer.ingest.sources import UPLOAD_SUFFIXES, Loaded, is_url, load_upload
from mailer.web.models import User
from mailer.web.pages import flash, flash_error, render
from mailer.web.params import Id, Page
from mailer.web.roles import Permission, allows
from mailer.web.staff import checked_form, see_other, staff_may, staff_user
from subscribers.models import Topic

router = APIRouter(prefix="/admin", include_in_schema=False)
log = logging.getLogger("mailer.web")
#: Releases per list page, as the campaigns list.
PAGE_SIZE = 25
#: At most this many files in one upload.
MAX_FILES = 20
#: Room for the form's other fields and the multipart framing around the files.
FORM_OVERHEAD = 64 * 1024


@router.get("/releases", response_class=HTMLResponse)
def releases(request: Request, q: str = "", topic: str = "", page: Page = 1,
             user: User = Depends(staff_user)) -> Response:
    """Newest release date first; ``q`` searches titles and bodies, ``topic`` is a slug."""
    with request.app.state.db.session() as session:
        topics = list(session.scalars(select(Topic).order_by(Topic.name)))
        if topic and topic not in {t.slug for t in topics}:
            raise HTTPException(400, f"There is no topic {topic!r}.")
        rows = list_releases(session, topic=topic or None, text=q,
                             limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    filters = {"q": q, "topic": topic}
    return render(request, "admin/releases.html", {
        "rows": rows[:PAGE_SIZE], "page": page, "has_more": len(rows) > PAGE_SIZE,
        "topics": topics, "filters": filters, "query": [(k, v) for k, v in filters.items() if v],
        "can_import": allows(user.role, Permission.IMPORT_RELEASES),
        "suffixes": ",".join(UPLOAD_SUFFIXES)})


@router.post("/releases/import", response_class=HTMLResponse)
async def releases_import(request: Request,
                          user: User = Depends(staff_may(Permission.IMPORT_RELEASES))
                          ) -> Response:
    """Uploaded files and/or one page or feed address, imported all or nothing as
    ``mailer releases import`` does; answers with the report for each source. A bad file
    or address is a 4xx naming it, and nothing is stored."""
    settings = request.app.state.settings
    limit = settings.max_import_bytes
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit * MAX_FILES + FORM_OVERHEAD:
        raise HTTPException(413, f"The upload is over the import limit of {limit:,} bytes "
                                 "a file.")
    form = await checked_form(request)
    uploads = [f for f in form.getlist("file") if getattr(f, "filename", "")]
    if len(uploads) > MAX_FILES:
        raise InvalidInput(f"import at most {MAX_FILES} files at once")
    url = str(form.get("url") or "").strip()
    if url and not is_url(url):
        raise InvalidInput("give the page or feed address starting with http:// or https://")
    sources: list[str | Loaded] = [await _read_upload(f, settings) for f in uploads]
    if url:
        sources.append(url)
    if not sources:
        raise InvalidInput("choose a release file or give a page or feed address")
    result = await run_in_threadpool(import_releases, request.app.state.db, sources, settings)
    log.info("%s imported releases from %d source(s): %s", user.name, len(sources),
             result.summary)
    return render(request, "admin/releases_import.html", {"result": result})


async def _read_upload(upload, settings) -> Loaded:
    """One uploaded file, read up to one byte past the import limit (so an oversized file is
    refused without holding all of it), checked as ``load_upload`` checks it."""
    limit = settings.max_import_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"{upload.filename}: over the import limit of {limit:,} "
                                 "bytes (MAILER_MAX_IMPORT_BYTES).")
    return load_upload(upload.filename, data, settings)


@router.get("/releases/{release_id}", response_class=HTMLResponse)
def release_page(release_id: Id, request: Request,
                 user: User = Depends(staff_user)) -> Response:
    """A release: its fields, text, topic tags (with why each topic scored) and campaigns."""
    with request.app.state.db.session() as session:
        release = get_release(session, release_id)
        detail = release_detail(session, release)
    untagged = [s for s in detail["scores"] if not s["tagged"]]
    # Both times are set on insert, microseconds apart: only a later change is one.
    changed = release.updated_at if release.updated_at and release.created_at and (
        release.updated_at - release.created_at).total_seconds() > 1 else None
    return render(request, "admin/release.html", {
        "r": release, "d": detail, "untagged": untagged, "changed": changed,
        "paragraphs": [p for p in (release.body or "").split("\n\n") if p.strip()],
        "can_tag": allows(user.role, Permission.TAG_RELEASES)})


@router.post("/releases/{release_id}/tag")
async def release_tag(release_id: Id, request: Request,
                      user: User = Depends(staff_may(Permission.TAG_RELEASES))) -> Response:
    """Tag the release with a topic, as ``mailer releases tag``."""
    return await _set_tag(release_id, request, on=True)


@router.post("/releases/{release_id}/untag")
async def release_untag(release_id: Id, request: Request,
                        user: User = Depends(staff_may(Permission.TAG_RELEASES))) -> Response:
    """Take a topic off the release, as ``mailer releases untag``."""
    return await _set_tag(release_id, request, on=False)


async def _set_tag(release_id: int, request: Request, *, on: bool) -> Response:
    form = await checked_form(request)
    topic = str(form.get("topic") or "").strip()
    if not topic:
        raise InvalidInput("choose a topic")
    with request.app.state.db.session() as session:
        get_release(session, release_id)  # no such release: the 404 page
    try:
        data = set_release_tag(request.app.state.db, release_id, topic, on=on)
    except NotFound as exc:  # the topic (the release was there a moment ago)
        flash_error(request, exc)
    else:
        flash(request, f"Topics: {', '.join(data['topics']) or 'none'}.", "success")
    return see_other(f"/admin/releases/{release_id}")
