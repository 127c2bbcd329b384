"""The dashboard's schedule: what goes out when in the next two weeks, in the office's time
zone, grouped by day (scheduled campaigns with their audience and approver, digest runs),
from ``mailer.scheduling.agenda`` as ``mailer schedule list`` reads the same rows. Reading
it needs only a login."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from mailer.scheduling.agenda import DAYS, upcoming
from mailer.scheduling.leader import current_leader
from mailer.web.models import User
from mailer.web.pages import render
from mailer.web.recounts import recount_after
from mailer.web.staff import staff_user

router = APIRouter(prefix="/admin", include_in_schema=False)


@router.get("/schedule", response_class=HTMLResponse)
def schedule_page(request: Request, user: User = Depends(staff_user)) -> Response:
    state = request.app.state
    with state.db.session() as session:
        days = upcoming(session, state.settings)
    page = render(request, "admin/schedule.html", {
        "days": days, "window": DAYS, "zone": state.settings.timezone,
        "scheduler": current_leader(state.db)})
    return recount_after(page, state.db, *(e.audience for day in days for e in day.entries))
