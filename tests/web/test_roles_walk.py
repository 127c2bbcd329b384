"""Every route of the API and the dashboard, walked with an author's credentials: each API
operation declares its permission, and an author is refused (403) on every one the table
does not give authors, which includes every change to the list."""

from __future__ import annotations

import importlib
import re

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from mailer.web import admin_sending, api
from mailer.web.app import ROUTER_MODULES
from mailer.web.roles import Permission, allows
from subscribers.models import Subscriber
from tests.web.conftest import add_subscriber, add_user, csrf_from, login
from tests.web.test_roles import OPEN_POSTS, _permissions

#: A value for every path parameter the routes use (a refusal comes before any lookup).
PATH_VALUES = {"email_or_id": "someone@example.org"}
#: Bodies that would be accepted, so a 403 is the role and not the input.
BODIES = {
    ("POST", "/api/subscribers"): {"email": "vouched@example.org", "double_opt_in": False},
    ("POST", "/api/campaigns/{campaign_id}/schedule"): {"now": True},
}


def filled(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "1"), path)


def api_routes() -> list[APIRoute]:
    return [r for r in api.router.routes if isinstance(r, APIRoute)]


def moves(route: APIRoute) -> list[tuple[str, str, set[Permission]]]:
    return [(method, route.path, _permissions(route)) for method in sorted(route.methods)]


@pytest.fixture
def tokens(cli, db):
    add_user(db, "alice", "author")
    add_user(db, "bob", "approver")
    made = {}
    for user in ("alice", "bob"):
        made[user] = cli("tokens", "create", f"{user}-script", "--user", user).stdout.strip()
    return made


def test_every_api_operation_declares_its_permission():
    routes = api_routes()
    assert len(routes) >= 10
    for route in routes:
        assert _permissions(route), f"{sorted(route.methods)} {route.path} declares none"


def test_list_changes_through_the_api_need_the_list_permission():
    changing = {(m, p) for r in api_routes() for m, p, needs in moves(r)
                if Permission.CHANGE_LIST in needs}
    assert {("POST", "/api/subscribers"),
            ("POST", "/api/subscribers/{email_or_id}/unsubscribe")} <= changing
    # Anything that is not a read (GET) names more than VIEW.
    for route in api_routes():
        for method, path, needs in moves(route):
            if method != "GET":
                assert needs - {Permission.VIEW}, f"{method} {path} only needs a login"


def test_an_author_token_is_refused_every_operation_authors_lack(client, db, tokens):
    add_subscriber(db, "someone@example.org")
    refused = []
    for route in api_routes():
        for method, path, needs in moves(route):
            if all(allows("author", p) for p in needs):
                continue
            response = client.request(
                method, filled(path), json=BODIES.get((method, path), {}),
                headers={"Authorization": f"Bearer {tokens['alice']}"})
            assert response.status_code == 403, f"{method} {path}: {response.status_code}"
            assert "author" in response.json()["detail"]
            refused.append((method, path))
    assert ("POST", "/api/subscribers") in refused
    with db.session() as session:
        emails = set(session.scalars(select(Subscriber.email)))
        assert emails == {"someone@example.org"}  # nobody added
        person = session.scalar(select(Subscriber))
        assert person.status == "active"  # nobody unsubscribed


def test_an_approver_token_may_change_the_list(client, db, tokens):
    auth = {"Authorization": f"Bearer {tokens['bob']}"}
    added = client.post("/api/subscribers", headers=auth,
                        json={"email": "vouched@example.org", "double_opt_in": False})
    assert added.status_code == 201 and added.json()["status"] == "active"
    gone = client.post("/api/subscribers/vouched@example.org/unsubscribe", headers=auth)
    assert gone.status_code == 200 and gone.json()["status"] == "unsubscribed"


def dashboard_moves() -> list[tuple[str, str, set[Permission]]]:
    """Every dashboard route that names a permission, with the campaign moves spelled out."""
    found = []
    for name in ROUTER_MODULES:
        for route in importlib.import_module(name).router.routes:
            if not isinstance(route, APIRoute) or not route.path.startswith("/admin"):
                continue
            if route.endpoint is admin_sending.campaign_action:
                for move, permission in admin_sending.MOVES.items():
                    found.append(("POST", route.path.replace("{action}", move), {permission}))
            elif route.path not in OPEN_POSTS:
                found.extend((m, route.path, needs) for m, path, needs in moves(route) if needs)
    return found


def test_an_author_is_refused_every_dashboard_move_authors_lack(client, db):
    add_user(db, "alice", "author")
    person = add_subscriber(db, "someone@example.org")
    login(client, "alice")
    token = csrf_from(client.get("/admin/campaigns").text)
    refused = set()
    for method, path, needs in dashboard_moves():
        if all(allows("author", p) for p in needs):
            continue
        url = re.sub(r"\{(\w+)\}", str(person), path)
        response = client.request(method, url, data={"csrf_token": token},
                                  follow_redirects=False)
        assert response.status_code == 403, f"{method} {path}: {response.status_code}"
        refused.add(path)
    # The list-changing ones are among them.
    assert {"/admin/subscribers/{subscriber_id}/unsubscribe",
            "/admin/subscribers/{subscriber_id}/forget", "/admin/subscribers/import",
            "/admin/users", "/admin/tokens"} <= refused
    with db.session() as session:
        assert session.get(Subscriber, person).status == "active"
