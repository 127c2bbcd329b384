"""The integers the web app takes from a client, bounded where they are declared.

Every id column is an ``Integer``: 32-bit signed on PostgreSQL (``integer``), 64-bit on
SQLite. A number past the column's range never names a row, and handed to the database it is
an error, not an empty result: PostgreSQL raises a DataError ("integer out of range") past
2**31 - 1, SQLite's driver an OverflowError past 2**63 - 1. So an id is bounded by the
smaller range, the same on both databases, and a client sending one out of range gets the
validation answer (422 from /api, 404 for a page address, 400 for a form) before any query
runs. Ids that arrive inside text (a form field, a path segment that is an id or an address,
a list) go through ``as_id``. Offsets are compared, never stored, so they take 64 bits.

The bounds are plain ``annotated_types`` constraints, so the same type works for a path
parameter, a query parameter and a Pydantic body field, and shows in the OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Interval

#: The largest id every database holds: PostgreSQL's ``integer`` (SQLite's goes to 2**63 - 1).
MAX_ID = 2**31 - 1
#: The largest offset either database takes (a 64-bit signed integer).
MAX_OFFSET = 2**63 - 1
#: Far past any list the office keeps, and small enough that page × page size fits 64 bits.
MAX_PAGE = 10**9

#: A row id: 1 … MAX_ID.
Id = Annotated[int, Interval(ge=1, le=MAX_ID)]
#: How many rows to skip in a listing.
Offset = Annotated[int, Interval(ge=0, le=MAX_OFFSET)]
#: How many rows one API listing returns.
Limit = Annotated[int, Interval(ge=1, le=500)]
#: A page number of a server-rendered listing, from 1.
Page = Annotated[int, Interval(ge=1, le=MAX_PAGE)]


def as_id(text: str) -> int | None:
    """The id ``text`` spells in ASCII digits, or None when it spells none in range
    (``str.isdigit`` alone also passes digits such as "²" that ``int`` refuses)."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_ID)):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None
