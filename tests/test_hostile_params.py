"""Integers no database column holds (past 64 bits, either sign) in any path or query parameter
get a clear 4xx, never a 500. SQLite refuses such a value with OverflowError, PostgreSQL with
a DataError; either would be a traceback if it reached the database.

The first test walks ``app.routes`` so a route added later is covered without editing it;
the others probe the ids that arrive as text (a path segment that may be an id or an
address, a comma-separated list, a form field) and a JSON body's id. Two more values no
database handles get the same treatment: text holding NUL, and send times at the ends of the
calendar.
"""

from __future__ import annotations

import types
import typing

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from mailer.web.app import create_app
from mailer.web.params import MAX_ID
from tests.web.conftest import add_user, csrf_from, fast_password_hashing, login, release_id

HUGE = 99999999999999999999999

__all__ = ["fast_password_hashing", "release_id"]  # fixtures, imported so they apply here


@pytest.fixture
def admin_client(cli, settings, db):
    """A client logged in to the dashboard as an admin, with an admin's API token, and the
    session's CSRF token (so a POST reaches its handler instead of the CSRF refusal)."""
    add_user(db, "root", "admin")
    made = cli("tokens", "create", "root-script", "--user", "root")
    assert made.exit_code == 0, made.stderr
    app = create_app(settings, db)
    with TestClient(app, base_url="https://testserver", raise_server_exceptions=False) as client:
        assert login(client, "root").status_code == 303
        client.csrf = csrf_from(client.get("/admin/campaigns/new").text)
        client.bearer = {"Authorization": f"Bearer {made.stdout.strip()}"}
        yield client


def _is_int(annotation) -> bool:
    """int, ``int | None`` or ``Optional[int]`` (what FastAPI reads as an integer)."""
    if annotation is int:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return int in typing.get_args(annotation)
    return False


def _params(dependant, kind: str) -> list:
    """The route's own ``kind`` ("path"/"query") parameters and its dependencies'."""
    found = list(getattr(dependant, f"{kind}_params"))
    for sub in dependant.dependencies:
        found.extend(_params(sub, kind))
    return found


def _int_params(app) -> list[tuple[object, str, str]]:
    """(route, method, "path:name"/"query:name") for every integer parameter of every route
    (``iter_route_contexts`` sees into included routers, with their prefixes)."""
    found = []
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute):
            continue
        for kind in ("path", "query"):
            for param in _params(route.dependant, kind):
                if _is_int(param.field_info.annotation):
                    found.extend((route, method, f"{kind}:{param.alias}")
                                 for method in sorted(route.methods))
    return found


def _request(client, route, method: str, target: str, value: int):
    kind, name = target.split(":")
    path = route.path
    for param in _params(route.dependant, "path"):
        filler = value if (kind, name) == ("path", param.alias) else (
            1 if _is_int(param.field_info.annotation) else "x")
        path = path.replace("{" + param.alias + "}", str(filler))
    params = {name: str(value)} if kind == "query" else {}
    if route.path.startswith("/api/"):
        return client.request(method, path, params=params, headers=client.bearer,
                              json={"now": True} if method == "POST" else None)
    data = {"csrf_token": client.csrf} if method == "POST" else None
    return client.request(method, path, params=params, data=data, follow_redirects=False)


def test_every_integer_parameter_refuses_an_integer_past_64_bits(admin_client):
    targets = _int_params(admin_client.app)
    # The walk must see the routes this test exists for, or it proves nothing.
    seen = {(route.path, target) for route, _method, target in targets}
    assert {("/archive/{campaign_id}", "path:campaign_id"), ("/archive", "query:page"),
            ("/api/releases", "query:offset"), ("/api/campaigns/{campaign_id}", "path:campaign_id"),
            ("/admin/subscribers/{subscriber_id}", "path:subscriber_id")} <= seen
    failures = []
    for route, method, target in targets:
        for value in (HUGE, -HUGE):
            response = _request(admin_client, route, method, target, value)
            if response.status_code >= 500 or response.status_code in (401, 403):
                failures.append((method, route.path, target, value, response.status_code))
            elif response.status_code >= 400:
                assert "\n" not in response.text.strip() or "<html" in response.text.lower()
    assert failures == []


def test_a_page_address_past_any_id_is_not_found(admin_client):
    """On a page an id that cannot exist is a 404 like any other; /api answers 422."""
    for path in (f"/archive/{HUGE}", f"/admin/campaigns/{HUGE}", f"/admin/subscribers/{-HUGE}"):
        assert admin_client.get(path).status_code == 404, path
    response = admin_client.get(f"/api/campaigns/{HUGE}", headers=admin_client.bearer)
    assert response.status_code == 422
    assert response.json() == {"detail": "path.campaign_id: Input should be less than or "
                                          f"equal to {MAX_ID}"}


def test_an_id_past_postgresqls_integer_names_nothing_on_either_database(admin_client):
    """Every id column is a 32-bit ``integer`` on PostgreSQL: an id just past it reached the
    database there and came back as a 400 "cannot be stored". It is refused before any query,
    the same on SQLite, and the largest id that can exist is simply not found."""
    client = admin_client
    past, largest = MAX_ID + 1, MAX_ID
    assert MAX_ID == 2**31 - 1
    for path in (f"/api/campaigns/{past}", f"/api/campaigns/{past}/status",
                 f"/api/releases/{past}"):
        assert client.get(path, headers=client.bearer).status_code == 422, path
    assert client.post(f"/api/campaigns/{past}/cancel",
                       headers=client.bearer).status_code == 422
    for path in (f"/api/campaigns/{largest}", f"/api/releases/{largest}",
                 f"/api/subscribers/{past}", f"/archive/{past}", f"/admin/campaigns/{past}"):
        assert client.get(path, headers=client.bearer).status_code == 404, path


@pytest.mark.parametrize("value", [HUGE, -HUGE])
def test_ids_given_as_text_refuse_an_integer_past_64_bits(admin_client, value):
    client = admin_client
    answers = {
        "api show": client.get(f"/api/subscribers/{value}", headers=client.bearer),
        "api unsubscribe": client.post(f"/api/subscribers/{value}/unsubscribe",
                                       headers=client.bearer),
        "api create": client.post("/api/campaigns", headers=client.bearer,
                                  json={"release_id": value, "query": 'topic = "x"'}),
        "progress": client.get("/admin/campaigns/progress.json", params={"ids": f"1,{value}"}),
        "new form": client.post("/admin/campaigns/new", follow_redirects=False, data={
            "csrf_token": client.csrf, "release_id": str(value), "query": 'topic = "x"'}),
    }
    statuses = {name: response.status_code for name, response in answers.items()}
    # The progress poll lists the campaigns it finds; an id that cannot exist is not one.
    assert statuses.pop("progress") == 200 and answers["progress"].json() == {"campaigns": []}
    assert all(400 <= code < 500 and code not in (401, 403) for code in statuses.values()), \
        statuses


def test_text_no_database_can_compare_is_a_4xx(admin_client, release_id):
    """PostgreSQL refuses NUL in any text it stores or compares (SQLite takes it): a
    search, filter, login or campaign field holding one is the client's error."""
    client = admin_client
    nul = "a\x00b"
    answers = {
        "api search": client.get("/api/subscribers", params={"q": nul}, headers=client.bearer),
        "api status": client.get("/api/campaigns", params={"status": nul},
                                 headers=client.bearer),
        "api segment": client.post("/api/campaigns", headers=client.bearer,
                                   json={"release_id": release_id, "segment": nul}),
        "api subject": client.post("/api/campaigns", headers=client.bearer, json={
            "release_id": release_id, "query": 'zip = "58102"', "subject": nul}),
        "admin search": client.get("/admin/subscribers", params={"q": nul}),
        "segment count": client.get("/admin/segments/count", params={"segment": nul}),
    }
    statuses = {name: response.status_code for name, response in answers.items()}
    assert all(code < 500 for code in statuses.values()), statuses


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"])
def test_a_send_time_at_the_ends_of_the_calendar_is_a_400(admin_client, release_id, at):
    client = admin_client
    created = client.post("/api/campaigns", headers=client.bearer,
                          json={"release_id": release_id, "query": 'zip = "58102"'})
    campaign_id = created.json()["id"]
    response = client.post(f"/api/campaigns/{campaign_id}/schedule", headers=client.bearer,
                           json={"at": at})
    assert response.status_code == 400
    assert response.json() == {"detail": "give a time to send between the years 1970 and 9000"}
