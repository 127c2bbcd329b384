"""mailer.tokens signs with a cached HMAC key; tokens must be exactly itsdangerous' own."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import TimestampSigner

from mailer.tokens import PURPOSES, InvalidToken, TokenSigner


@given(subscriber_id=st.integers(min_value=0, max_value=2**53),
       purpose=st.sampled_from(PURPOSES), secret=st.text(min_size=1, max_size=80))
def test_fast_tokens_equal_itsdangerous_and_verify(subscriber_id, purpose, secret):
    signer = TokenSigner(secret)
    token = signer.make(subscriber_id, purpose)
    reference = TimestampSigner(secret, salt=f"mailer.{purpose}")
    # The timestamp could tick between the two calls; compare on the token's own stamp.
    value, stamp, _ = token.split(".")
    assert reference.get_signature(f"{value}.{stamp}").decode() == token.split(".")[2]
    assert signer.read(token, purpose) == subscriber_id


def test_tampered_token_and_unknown_purpose_fail():
    signer = TokenSigner("secret")
    token = signer.make(5, "unsubscribe")
    forged = "6" + token[1:]
    with pytest.raises(InvalidToken):
        signer.read(forged, "unsubscribe")
    with pytest.raises(ValueError):
        signer.make(5, "nonsense")


def test_make_many_equals_make_for_each_purpose():
    signer = TokenSigner("secret")
    tokens = signer.make_many(77, ("unsubscribe", "preferences"))
    assert [signer.read(t, p) for t, p in zip(tokens, ("unsubscribe", "preferences"),
                                               strict=True)] == [77, 77]
    # Same second, same bytes as make() (retry once if the clock ticked in between).
    for _ in range(2):
        single = [signer.make(77, "unsubscribe"), signer.make(77, "preferences")]
        many = signer.make_many(77, ("unsubscribe", "preferences"))
        if single == many:
            break
    assert single == many
    with pytest.raises(ValueError, match="nonsense"):
        signer.make_many(1, ("unsubscribe", "nonsense"))
