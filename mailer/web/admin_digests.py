"""Recurring digests in the dashboard: the list (daily and weekly, with the next run in the
office's time zone and what the last run did), enable, disable and run now. The same
functions as ``mailer digests list|enable|disable|run`` (``mailer.scheduling.digests``).

Running a digest sends mail, so it asks first, naming how many people it may reach.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from mailer.errors import MailerError
from mailer.scheduling import digests
from mailer.web.models import User
from mailer.web.pages import flash, flash_error, render
from mailer.web.params import Id
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

router = APIRouter(prefix="/admin", include_in_schema=False)
log = logging.getLogger("mailer.web")


@router.get("/digests", response_class=HTMLResponse)
def digest_list(request: Request, user: User = Depends(staff_user)) -> Response:
    settings = request.app.state.settings
    with request.app.state.db.session() as session:
        rows = [digests.digest_to_dict(d, settings) for d in digests.list_digests(session)]
    return render(request, "admin/digests.html", {"rows": rows})


@router.post("/digests/{digest_id}/enable")
async def digest_enable(digest_id: Id, request: Request,
                        user: User = Depends(staff_may(Permission.MANAGE_SOURCES))) -> Response:
    return await _set_active(request, digest_id, True)


@router.post("/digests/{digest_id}/disable")
async def digest_disable(digest_id: Id, request: Request,
                         user: User = Depends(staff_may(Permission.MANAGE_SOURCES))
                         ) -> Response:
    return await _set_active(request, digest_id, False)


async def _set_active(request: Request, digest_id: int, active: bool) -> Response:
    await checked_form(request)
    with request.app.state.db.session() as session:
        digest = digests.set_active(session, digest_id, active)  # NotFound: 404
        name = digest.name
    flash(request, f"{name} {'enabled' if active else 'disabled: it no longer goes out'}.",
          "success")
    return see_other("/admin/digests")


@router.post("/digests/{digest_id}/run", response_class=HTMLResponse)
async def digest_run(digest_id: Id, request: Request,
                     user: User = Depends(staff_may(Permission.SCHEDULE))) -> Response:
    """Run the digest now, as ``mailer digests run ID`` does, once the person has answered
    the question naming how many people it may go to."""
    form = await checked_form(request)
    if needs_confirmation(form):
        with request.app.state.db.session() as session:
            digest = digests.get_digest(session, digest_id)
            name = digest.name
            outlook = digests.run_outlook(session, digest)
        return ask(request, Confirmation(
            question=f"Send {name} now to up to {outlook['people']:,} "
                     f"{'person' if outlook['people'] == 1 else 'people'}?",
            consequence=f"{outlook['releases']:,} release(s) were published since its last "
                        "run. Each person gets one email with the releases on their topics "
                        "they have not had yet; someone owed nothing gets nothing.",
            action=f"/admin/digests/{digest_id}/run", button="Send digest now",
            back="/admin/digests"))
    try:
        result = await run_in_threadpool(
            digests.run_digest, request.app.state.db, request.app.state.settings, digest_id,
            by=user.name)
    except MailerError as exc:
        flash_error(request, exc)
        return see_other("/admin/digests")
    log.info("%s ran digest %s", user.name, digest_id)
    flash(request, _run_summary(result), "success")
    return see_other("/admin/digests")


def _run_summary(result: dict) -> str:
    """One sentence for what a run did (the CLI's ``digests run`` prints the same facts)."""
    if result.get("note"):
        return f"Nothing sent: {result['note']}."
    campaigns = result["campaigns"]
    if not campaigns:
        return f"Nothing new for anyone ({result['releases']} release(s) in the window)."
    people = sum(item["expected"] for item in campaigns)
    ids = ", ".join(f"#{item['id']}" for item in campaigns)
    return (f"Digest started: {result['releases']} release(s) to {people:,} "
            f"{'person' if people == 1 else 'people'} in campaign(s) {ids}.")
