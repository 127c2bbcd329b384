"""A signed webhook post nested thousands of levels deep is refused with 400, the way any
other body that is not an array of event objects is, never a RecursionError and a 500; one
nested exactly as deep as allowed is stored like any other."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from mailer.tracking import webhook
from mailer.tracking.events import MAX_DEPTH
from mailer.tracking.models import DeliveryEventRow
from mailer.web.app import create_app

EVENT = '"event":"delivered","sg_event_id":"deep-1","email":"a@example.org"'


def _nest(levels: int, inner: str = "1") -> str:
    return "[" * levels + inner + "]" * levels


def _event_body(levels: int, *, spaced: bool = False, nul: bool = False) -> bytes:
    """One event whose "x" is ``levels`` arrays deep: the body nests ``levels + 2`` deep."""
    extra = ',"y":"a\\u0000b"' if nul else ""
    if spaced:
        return f'[ {{{EVENT}{extra}, "x": {_nest(levels)}}} ]'.encode()
    return f'[{{{EVENT}{extra},"x":{_nest(levels)}}}]'.encode()


def _post(settings, db, signer, body: bytes):
    client = TestClient(create_app(settings, db), raise_server_exceptions=False)
    return client.post(webhook.PATH, content=body, headers=signer.headers(body))


REFUSED = {
    "5000 bare arrays": _nest(5000, "").encode(),
    "5000 objects, not an array": ('{"a":' * 5000 + "1" + "}" * 5000).encode(),
    "5000 inside an event": _event_body(5000),
    "5000 inside an event, spaced": _event_body(5000, spaced=True),
    "900 inside an event (orjson reads it, cannot write it)": _event_body(900),
    "900 inside an event with an escape to scrub": _event_body(900, nul=True),
    "one past the limit": _event_body(MAX_DEPTH - 1),
    "one past the limit, spaced": _event_body(MAX_DEPTH - 1, spaced=True),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_a_signed_body_nested_too_deep_is_refused_with_400(name, own_settings, signer, db):
    response = _post(own_settings, db, signer, REFUSED[name])
    assert response.status_code == 400, response.text
    assert response.json() == {"detail": f"body is nested deeper than {MAX_DEPTH} levels"}


@pytest.mark.parametrize("spaced, nul", [(False, False), (True, False), (False, True)])
def test_a_body_nested_as_deep_as_allowed_is_stored(spaced, nul, own_settings, signer, db):
    response = _post(own_settings, db, signer, _event_body(MAX_DEPTH - 2, spaced=spaced,
                                                           nul=nul))
    assert response.status_code == 204, response.text
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryEventRow)) == 1
