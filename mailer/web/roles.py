"""Who may do what, for the dashboard and the API alike: the one table of permissions.

Every dashboard page and API operation that changes something names its ``Permission``;
``allows(role, permission)`` answers from ``NEEDED`` and nothing else, so the contract's
roles are read in one place:

- author: import and tag releases; create and edit drafts; save segments; preview; test sends;
- approver: also approve someone else's campaign, schedule, send now, pause, resume, cancel;
  add, import, unsubscribe and erase subscribers; manage feeds, topics and digests;
- admin: also users, roles, passwords and API tokens.

Reading (lists, reports, a subscriber's page) needs only a login (``VIEW``, which every
role has; the API names it on each read so that every operation declares a permission).
Whether a campaign may be approved by its own author is the campaign's rule
(``MAILER_REQUIRE_APPROVAL``), checked by the approve action itself, not here.
"""

from __future__ import annotations

from enum import StrEnum

from mailer.errors import PolicyRefusal
from mailer.web.models import ROLES


class Permission(StrEnum):
    VIEW = "see releases, campaigns, subscribers and reports"
    IMPORT_RELEASES = "import releases"
    TAG_RELEASES = "tag releases"
    EDIT_DRAFTS = "create and edit drafts"
    SAVE_SEGMENTS = "save segments"
    PREVIEW = "preview campaigns"
    SEND_TESTS = "send test copies"
    APPROVE = "approve campaigns"
    SCHEDULE = "schedule or send campaigns"
    STEER = "pause, resume or cancel campaigns"
    CHANGE_LIST = "add, import, unsubscribe or erase subscribers"
    MANAGE_SOURCES = "manage feeds, topics and digests"
    MANAGE_ACCESS = "manage users and API tokens"


AUTHOR, APPROVER, ADMIN = ROLES
#: The least role each permission needs; every role has what the roles before it have.
NEEDED: dict[Permission, str] = {
    Permission.VIEW: AUTHOR,
    Permission.IMPORT_RELEASES: AUTHOR,
    Permission.TAG_RELEASES: AUTHOR,  # tags are part of the content authors make
    Permission.EDIT_DRAFTS: AUTHOR,
    Permission.SAVE_SEGMENTS: AUTHOR,
    Permission.PREVIEW: AUTHOR,
    Permission.SEND_TESTS: AUTHOR,
    Permission.APPROVE: APPROVER,
    Permission.SCHEDULE: APPROVER,
    Permission.STEER: APPROVER,
    Permission.CHANGE_LIST: APPROVER,
    Permission.MANAGE_SOURCES: APPROVER,
    Permission.MANAGE_ACCESS: ADMIN,
}
_RANK = {role: rank for rank, role in enumerate(ROLES)}


def allows(role: str, permission: Permission) -> bool:
    """True when ``role`` may do what ``permission`` names (an unknown role may do nothing)."""
    return _RANK.get(role, -1) >= _RANK[NEEDED[permission]]


def check(user, permission: Permission) -> None:
    """Raises PolicyRefusal (403 on the web) naming what is missing. ``user`` is anything
    with ``name`` and ``role``: a dashboard user or an API caller."""
    if not allows(user.role, permission):
        raise PolicyRefusal(f"{user.name} is an {user.role}; only an {NEEDED[permission]} "
                            f"or above may {permission}")
