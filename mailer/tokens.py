"""Signed tokens for the links in every email and on every constituent page.

A token is bound to one subscriber and one purpose (``unsubscribe``, ``preferences``,
``confirm``, …): a token made for one purpose never verifies for another, and a forged or
altered token never verifies at all. Tokens carry their signing time so a purpose can expire
(confirmation links do; unsubscribe links must keep working for years).
"""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

from mailer.errors import InvalidInput

PURPOSES = ("unsubscribe", "preferences", "confirm", "view")


class InvalidToken(InvalidInput):
    """The token is forged, altered, for another purpose, or expired."""


class TokenSigner:
    """Makes and reads subscriber tokens. Build one per process (it caches derived keys)."""

    def __init__(self, secret: str):
        if not secret:
            raise ValueError("a token signer needs a secret")
        self._signers = {
            purpose: TimestampSigner(secret, salt=f"mailer.{purpose}") for purpose in PURPOSES
        }

    def make(self, subscriber_id: int, purpose: str) -> str:
        return self._signer(purpose).sign(str(subscriber_id)).decode("ascii")

    def read(self, token: str, purpose: str, max_age: int | None = None) -> int:
        """Return the subscriber id the token was made for.

        Raises InvalidToken when the signature is wrong, the purpose differs, or the token is
        older than ``max_age`` seconds.
        """
        try:
            value = self._signer(purpose).unsign(token, max_age=max_age)
        except SignatureExpired:
            raise InvalidToken("this link has expired") from None
        except (BadSignature, UnicodeError, ValueError):
            raise InvalidToken("this link is not valid") from None
        try:
            return int(value)
        except ValueError:
            raise InvalidToken("this link is not valid") from None

    def _signer(self, purpose: str) -> TimestampSigner:
        try:
            return self._signers[purpose]
        except KeyError:
            raise ValueError(f"unknown token purpose {purpose!r}") from None
