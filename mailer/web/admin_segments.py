"""Saved segments in the dashboard: list, create, edit (with a live count and a sample of the
people it reaches), delete. The same functions as ``mailer segments …``.

A segment is evaluated afresh at each send, so an edit changes the audience of every campaign
using it that has not started; the edit page lists those campaigns before it is saved, and a
changed query sends the approved ones back to draft (``actions.edit_segment``).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from mailer.campaigns import actions
from mailer.campaigns.service import campaigns_using_segment
from mailer.delivery.reach import query_reach
from mailer.errors import MailerError
from mailer.web.models import User
from mailer.web.pages import flash, flash_error, render
from mailer.web.params import Id
from mailer.web.recounts import recount_after
from mailer.web.roles import Permission
from mailer.web.staff import checked_form, see_other, staff_may, staff_user
from subscribers import segments
from subscribers.models import Segment, Topic

router = APIRouter(prefix="/admin", include_in_schema=False)
SAMPLE_SIZE = 10


@router.get("/segments", response_class=HTMLResponse)
def segment_list(request: Request, user: User = Depends(staff_user)) -> Response:
    """Every saved segment; counts load live (one request each) so the list stays fast."""
    with request.app.state.db.session() as session:
        rows = list(session.scalars(select(Segment).order_by(Segment.name)))
    return render(request, "admin/segments.html", {"rows": rows})


@router.get("/segments/new", response_class=HTMLResponse)
def segment_new(request: Request,
                user: User = Depends(staff_may(Permission.SAVE_SEGMENTS))) -> Response:
    with request.app.state.db.session() as session:
        return _page(request, session, None, {"name": "", "query": ""})


@router.post("/segments/new", response_class=HTMLResponse)
async def segment_create(request: Request,
                         user: User = Depends(staff_may(Permission.SAVE_SEGMENTS))) -> Response:
    form = await checked_form(request)
    values = {k: str(form.get(k) or "") for k in ("name", "query")}
    with request.app.state.db.session() as session:
        try:
            segment = segments.create_segment(session, values["name"], values["query"])
            segment_id = segment.id
        except MailerError as exc:
            session.rollback()
            return _page(request, session, None, values, str(exc), status_code=422)
    flash(request, f"Segment “{values['name'].strip()}” saved.", "success")
    return see_other(f"/admin/segments/{segment_id}")


@router.get("/segments/{segment_id}", response_class=HTMLResponse)
def segment_detail(segment_id: Id, request: Request,
                   user: User = Depends(staff_user)) -> Response:
    with request.app.state.db.session() as session:
        segment = _segment(session, segment_id)
        return _page(request, session, segment, {"name": segment.name, "query": segment.query})


@router.post("/segments/{segment_id}", response_class=HTMLResponse)
async def segment_update(segment_id: Id, request: Request,
                         user: User = Depends(staff_may(Permission.SAVE_SEGMENTS))) -> Response:
    form = await checked_form(request)
    values = {k: str(form.get(k) or "") for k in ("name", "query")}
    with request.app.state.db.session() as session:
        segment = _segment(session, segment_id)
        try:
            result = actions.edit_segment(session, segment, by=user.name, **values)
        except MailerError as exc:
            session.rollback()
            return _page(request, session, _segment(session, segment_id), values, str(exc),
                         status_code=422)
    flash(request, _saved_message(result), "success")
    return see_other(f"/admin/segments/{segment_id}")


@router.post("/segments/{segment_id}/delete")
async def segment_delete(segment_id: Id, request: Request,
                         user: User = Depends(staff_may(Permission.SAVE_SEGMENTS))) -> Response:
    await checked_form(request)
    try:
        with request.app.state.db.session() as session:
            segment = _segment(session, segment_id)
            name = segment.name
            segments.delete_segment(session, segment)
    except MailerError as exc:
        flash_error(request, exc)
        return see_other(f"/admin/segments/{segment_id}")
    flash(request, f"Segment “{name}” deleted.", "success")
    return see_other("/admin/segments")


def _saved_message(result: dict[str, list]) -> str:
    message = f"Segment saved ({' and '.join(result['changed'])} changed)."
    if result["withdrawn"]:
        ids = ", ".join(f"#{i}" for i in result["withdrawn"])
        message += (f" Campaign{'s' if len(result['withdrawn']) > 1 else ''} {ids} went "
                    "back to draft: the audience they were approved for has changed.")
    return message


def _segment(session, segment_id: int) -> Segment:
    segment = session.get(Segment, segment_id)
    if segment is None:
        raise HTTPException(404, "There is no such segment.")
    return segment


def _page(request: Request, session, segment: Segment | None, values: dict[str, str],
          error: str | None = None, status_code: int = 200) -> Response:
    """The segment form, with (for a saved segment) its count (``query_reach``: how many
    get each release as it goes out, how many in their digest; on a big list the stored
    count), a sample of the people it reaches and the campaigns an edit would change."""
    reach = sample = users = None
    if segment is not None and error is None:
        reach = query_reach(session, request.app.state.settings, segment=segment.id)
        sample = session.execute(
            segments.audience_select(session, segment=segment.id).limit(SAMPLE_SIZE)).all()
        users = campaigns_using_segment(session, segment.id)
    return recount_after(render(request, "admin/segment.html", {
        "segment": segment, "values": values, "error": error, "reach": reach,
        "sample": sample, "campaigns": users,
        "topics": list(session.scalars(select(Topic).order_by(Topic.name))),
    }, status_code=status_code), request.app.state.db, reach)
