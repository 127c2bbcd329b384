"""Roles are read from one table (mailer.web.roles), and every dashboard move names its
permission there: the contract's author / approver / admin split, checked route by route."""

from __future__ import annotations

import importlib

import pytest
from fastapi.routing import APIRoute

from mailer.web import admin_sending
from mailer.web.app import ROUTER_MODULES
from mailer.web.roles import NEEDED, Permission, allows

#: The contract's roles section, as (role, may, may not).
CONTRACT = {
    "author": {Permission.VIEW, Permission.IMPORT_RELEASES, Permission.TAG_RELEASES,
               Permission.EDIT_DRAFTS, Permission.SAVE_SEGMENTS, Permission.PREVIEW,
               Permission.SEND_TESTS},
    "approver": {Permission.APPROVE, Permission.SCHEDULE, Permission.STEER,
                 Permission.CHANGE_LIST, Permission.MANAGE_SOURCES},
    "admin": {Permission.MANAGE_ACCESS},
}
#: Posts any logged-in (or anonymous) person may make.
OPEN_POSTS = {"/admin/login", "/admin/logout"}


def test_every_permission_has_a_role_and_follows_the_contract():
    assert set(NEEDED) == set(Permission)
    granted: set[Permission] = set()
    for role in ("author", "approver", "admin"):
        granted |= CONTRACT[role]
        assert {p for p in Permission if allows(role, p)} == granted, role
    assert not any(allows("intern", p) for p in Permission)


def _permissions(route: APIRoute) -> set[Permission]:
    found, todo = set(), [route.dependant]
    while todo:
        dependant = todo.pop()
        permission = getattr(dependant.call, "permission", None)
        if permission is not None:
            found.add(permission)
        todo.extend(dependant.dependencies)
    return found


def test_every_dashboard_post_names_its_permission():
    routes = [r for name in ROUTER_MODULES for r in importlib.import_module(name).router.routes]
    posts = [r for r in routes if isinstance(r, APIRoute) and "POST" in r.methods
             and r.path.startswith("/admin")]
    assert posts
    for route in posts:
        if route.path in OPEN_POSTS:
            continue
        if route.endpoint is admin_sending.campaign_action:
            # One route for several moves: each move's permission is in its table.
            assert set(admin_sending.MOVES) == {"test", "approve", "schedule", "pause",
                                                "resume", "cancel", "retry"}
            continue
        assert _permissions(route), f"{route.path} checks no permission"


@pytest.mark.parametrize("move, allowed_for_author", [
    ("test", True), ("approve", False), ("schedule", False), ("cancel", False),
    ("retry", False),
])
def test_campaign_moves_follow_the_table(move, allowed_for_author):
    assert allows("author", admin_sending.MOVES[move]) is allowed_for_author
    assert allows("approver", admin_sending.MOVES[move])
