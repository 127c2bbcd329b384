"""The integers the web app takes from a client, bounded where they are declared.

Every id column is a 64-bit signed integer; a larger number (or a smaller one) never names a
row, and handed to the database it is an error, not an empty result: SQLite's driver raises
OverflowError, PostgreSQL a DataError. So a path, query or body integer is declared with one
of these types, and a client sending one out of range gets the validation answer (422 from
/api, 400 on a page) before any query runs. Ids that arrive inside text (a form field, a
path segment that is an id or an address, a list) go through ``as_id``.

The bounds are plain ``annotated_types`` constraints, so the same type works for a path
parameter, a query parameter and a Pydantic body field, and shows in the OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Interval

#: The largest value a 64-bit signed column holds (PostgreSQL BIGINT, SQLite INTEGER).
MAX_ID = 2**63 - 1
#: Far past any list the office keeps, and small enough that page × page size fits 64 bits.
MAX_PAGE = 10**9

#: A row id: 1 … MAX_ID.
Id = Annotated[int, Interval(ge=1, le=MAX_ID)]
#: How many rows to skip in a listing.
Offset = Annotated[int, Interval(ge=0, le=MAX_ID)]
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
