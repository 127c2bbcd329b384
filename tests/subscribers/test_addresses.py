"""Address normalization: one spelling per mailbox, syntax-only validation, stable hashes."""

from __future__ import annotations

import hashlib

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import assume, example, given
from hypothesis import strategies as st

from mailer.errors import InvalidInput
from subscribers.addresses import (
    InvalidEmail,
    _fast_normalize,
    email_hash,
    hash_address,
    is_valid_email,
    normalize_email,
)


@pytest.mark.parametrize(("raw", "expected"), [
    ("Jane.Doe@Example.ORG", "jane.doe@example.org"),
    ("  jane.doe@example.org\t\n", "jane.doe@example.org"),
    ("JANE.DOE@EXAMPLE.ORG", "jane.doe@example.org"),
    ("o'brien+news@Example.com", "o'brien+news@example.com"),
    ("reader@Bücher.Example", "reader@xn--bcher-kva.example"),
    ("reader@xn--bcher-kva.example", "reader@xn--bcher-kva.example"),
    ("Zoë@Example.org", "zoë@example.org"),
])
def test_normalizes_to_one_spelling(raw, expected):
    assert normalize_email(raw) == expected


@pytest.mark.parametrize("raw", [
    "", "   ", "plainaddress", "a@", "@example.org", "a..b@example.org", "a b@example.org",
    "jane@example", "jane@localhost", "jane@host.test", "jane@-bad-.org",
    "jane@" + "a" * 64 + ".org", "Smith, Bob", "x" * 310 + "@example.org",
])
def test_invalid_addresses_raise_invalid_email(raw):
    with pytest.raises(InvalidEmail) as info:
        normalize_email(raw)
    assert isinstance(info.value, InvalidInput)
    assert "\n" not in str(info.value)
    assert not is_valid_email(raw)


def test_hash_is_sha256_of_normalized_form_and_case_blind():
    assert hash_address("Jane@Example.org") == hash_address(" jane@EXAMPLE.org ")
    assert email_hash("jane@example.org") == hashlib.sha256(b"jane@example.org").hexdigest()
    assert hash_address("jane@example.org") != hash_address("jane2@example.org")


def test_non_text_is_invalid():
    with pytest.raises(InvalidEmail):
        normalize_email(None)  # type: ignore[arg-type]


# --- properties ------------------------------------------------------------------------------

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_atom_chars = st.sampled_from(list(_LETTERS + ".+-_'!#$%&*/=?^`{|}~"))
_local = st.text(_atom_chars, min_size=1, max_size=70)
_label = st.text(st.sampled_from(list(_LETTERS + "-")), min_size=1, max_size=20)
_domain = st.lists(_label, min_size=1, max_size=4).map(".".join)
_addresses = st.one_of(
    st.builds(lambda local, domain: f"{local}@{domain}", _local, _domain),
    st.builds(lambda local, domain: f"{local}@{domain}", st.text(min_size=1, max_size=20),
              st.text(min_size=1, max_size=20)),
    st.text(max_size=40),
)


def _slow(raw: str) -> str | None:
    """The reference: email-validator, then the same case folding."""
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError:
        return None
    return normalize_email(raw) if result else None


@given(_addresses)
@example("İstanbul@Example.org")
@example("ﬁle@example.org")
def test_normalizing_is_idempotent(raw):
    try:
        once = normalize_email(raw)
    except InvalidEmail:
        return
    assert normalize_email(once) == once


@given(_addresses)
def test_case_variants_are_the_same_subscriber(raw):
    try:
        base = normalize_email(raw)
    except InvalidEmail:
        return
    for variant in (raw.upper(), raw.lower(), raw.swapcase(), f"  {raw} "):
        try:
            assert normalize_email(variant) == base
        except InvalidEmail:
            # Case mapping of some non-ASCII letters changes length or validity; ASCII never.
            assume(not raw.isascii())


_plausible = st.builds(
    lambda atoms, labels, tld: ".".join(atoms) + "@" + ".".join(labels + [tld]),
    st.lists(st.text(_atom_chars.filter(lambda c: c != "."), min_size=1, max_size=12),
             min_size=1, max_size=3),
    st.lists(_label, min_size=1, max_size=3),
    st.one_of(st.sampled_from(["org", "COM", "gov", "test", "local", "xn--p1ai", "a", "c0m"]),
              st.text(st.sampled_from(list("abcXYZ-1")), min_size=1, max_size=6)),
)


@given(_plausible)
@example("a@xn--bcher-kva.example")
@example("a@b--c.example.org")
@example("a@b.onion")
def test_fast_path_agrees_with_email_validator(raw):
    fast = _fast_normalize(raw)
    try:
        result = validate_email(raw, check_deliverability=False)
    except EmailNotValidError:
        assert fast is None  # the fast path never accepts what email-validator refuses
        return
    if fast is not None:
        assert fast == f"{result.local_part.lower()}@{result.ascii_domain.lower()}"


@given(_addresses)
def test_never_raises_anything_but_invalid_email(raw):
    try:
        normalize_email(raw)
    except InvalidEmail:
        pass
