"""Which methods an address answers: the ``Allow`` header of a 405 and the ``OPTIONS``
answer (RFC 9110 §10.2.1, §9.3.7).

Starlette answers a method a path does not take with the methods of the first route matching
that path only, so ``/api/campaigns`` (GET and POST, two routes) said ``Allow: GET``, and it
answered ``OPTIONS`` with that 405 too. ``allowed_methods`` asks every route.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from starlette.routing import Match, Mount

#: The methods asked about; OPTIONS itself is always answered for a path some route takes.
CANDIDATES = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(app: Any, scope: MutableMapping[str, Any]) -> list[str]:
    """The methods the request's path answers, ``OPTIONS`` included; empty when no route
    takes the path. Each method is put to the router's own matching (included routers nest
    their routes, so the routes cannot simply be listed); mounted apps such as the static
    files answer for themselves and are left out."""
    routes = [route for route in app.router.routes if not isinstance(route, Mount)]
    methods = [method for method in CANDIDATES
               if any(route.matches({**scope, "method": method})[0] is Match.FULL
                      for route in routes)]
    return sorted({*methods, "OPTIONS"}) if methods else []


def allow_header(app: Any, scope: MutableMapping[str, Any]) -> dict[str, str]:
    """``{"Allow": …}`` for the request's path, or no header when no route takes it."""
    methods = allowed_methods(app, scope)
    return {"Allow": ", ".join(methods)} if methods else {}
