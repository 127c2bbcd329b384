"""Signed tokens for the links in every email and on every constituent page.

A token is bound to one subscriber and one purpose (``unsubscribe``, ``preferences``,
``confirm``, …): a token made for one purpose never verifies for another, and a forged or
altered token never verifies at all. Tokens carry their signing time so a purpose can expire
(confirmation links do; unsubscribe links must keep working for years).
"""

from __future__ import annotations

import binascii
import time

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from itsdangerous.encoding import int_to_bytes

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
        # itsdangerous derives the key on every sign(); a send signs two tokens per recipient,
        # so keep the HMAC's keyed inner/outer hash states per purpose and copy them (the same
        # bytes TimestampSigner.sign produces, in a fraction of the time).
        self._macs = {
            purpose: _KeyedHMAC(signer.derive_key(), signer.digest_method)
            for purpose, signer in self._signers.items()
        }
        self._stamp = (-1, "")

    def make(self, subscriber_id: int, purpose: str) -> str:
        """A token for ``subscriber_id`` and ``purpose``, byte-for-byte what
        ``TimestampSigner.sign`` makes. Raises ValueError for an unknown purpose."""
        try:
            mac = self._macs[purpose]
        except KeyError:
            raise ValueError(f"unknown token purpose {purpose!r}") from None
        payload = f"{int(subscriber_id)}.{self._timestamp()}"
        return f"{payload}.{_b64(mac.digest(payload.encode('ascii')))}"

    def make_many(self, subscriber_id: int, purposes: tuple[str, ...]) -> list[str]:
        """``[make(subscriber_id, p) for p in purposes]``, signed at the same second, sharing
        the work they have in common (a send signs two tokens per recipient).

        Raises ValueError for an unknown purpose."""
        try:
            macs = [self._macs[purpose] for purpose in purposes]
        except KeyError as exc:
            raise ValueError(f"unknown token purpose {exc.args[0]!r}") from None
        payload = f"{int(subscriber_id)}.{self._timestamp()}"
        data = payload.encode("ascii")
        return [f"{payload}.{_b64(mac.digest(data))}" for mac in macs]

    def _timestamp(self) -> str:
        now = int(time.time())
        if self._stamp[0] != now:
            self._stamp = (now, _b64(int_to_bytes(now)))
        return self._stamp[1]

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


class _KeyedHMAC:
    """HMAC (RFC 2104) with the key's padded inner and outer hash states computed once."""

    def __init__(self, key: bytes, digest_method):
        block = digest_method().block_size
        if len(key) > block:
            key = digest_method(key).digest()
        key = key.ljust(block, b"\0")
        self._inner = digest_method(bytes(b ^ 0x36 for b in key))
        self._outer = digest_method(bytes(b ^ 0x5C for b in key))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    """itsdangerous' base64: URL-safe alphabet, no padding."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode()
