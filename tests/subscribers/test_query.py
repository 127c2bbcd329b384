"""The segment query parser: grammar, positions in errors, canonical text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailer.errors import QueryError
from subscribers.query import (
    FIELDS,
    OPERATORS,
    And,
    Compare,
    In,
    Not,
    Or,
    Value,
    parse_query,
    to_text,
    tokenize,
)


def s(text):
    return Value("string", text)


def test_precedence_not_over_and_over_or():
    tree = parse_query('county = "Cass" or zip ~ "581*" and not state = "ND"')
    assert tree == Or((
        Compare("county", "=", s("Cass")),
        And((Compare("zip", "~", s("581*")), Not(Compare("state", "=", s("ND"))))),
    ))


def test_contract_example_parses():
    tree = parse_query('topic = "human-trafficking" and (county = "Cass" or zip ~ "581*")')
    assert tree == And((
        Compare("topic", "=", s("human-trafficking")),
        Or((Compare("county", "=", s("Cass")), Compare("zip", "~", s("581*")))),
    ))


def test_keywords_and_fields_are_case_insensitive():
    assert parse_query('COUNTY IN ("Cass", "Ward") AND NOT Zip ~ "581*"') == parse_query(
        'county in ("Cass", "Ward") and not zip ~ "581*"')


def test_values_numbers_dates_and_escapes():
    assert parse_query("zip = 01234") == Compare("zip", "=", Value("number", "01234"))
    assert parse_query("joined >= 2024-01-31") == Compare(
        "joined", ">=", Value("date", "2024-01-31"))
    assert parse_query(r'name = "say \"hi\" \\ bye"') == Compare(
        "name", "=", s('say "hi" \\ bye'))
    assert parse_query('topic in ("a")') == In("topic", (s("a"),))


@pytest.mark.parametrize(("query", "position", "words"), [
    ("", 0, "empty"),
    ("   ", 0, "empty"),
    ('zip = "1" ; DROP TABLE subscribers --', 10, "';'"),
    ("county = 'Cass'", 9, "double quotes"),
    ('colour = "red"', 0, "unknown field"),
    ('county "Cass"', 7, "operator"),
    ("county =", 8, "value"),
    ("county = Cass", 9, "double quotes"),
    ('county = "Cass', 9, "unterminated"),
    ('(county = "Cass"', 16, "')'"),
    ('county in "Cass"', 10, "'('"),
    ('county in ("Cass" "Ward")', 18, "','"),
    ('county = "Cass" zip = "1"', 16, "'and', 'or'"),
    ('county = "Cass" and', 19, "field"),
    ('not', 3, "field"),
    ("zip == 5", 5, "value"),
])
def test_errors_name_the_position(query, position, words):
    with pytest.raises(QueryError) as info:
        parse_query(query)
    assert info.value.position == position
    assert words in str(info.value)
    assert f"at position {position}" in str(info.value)


def test_nesting_is_bounded_with_a_query_error():
    with pytest.raises(QueryError, match="nests"):
        parse_query("(" * 500 + 'zip = "1"' + ")" * 500)
    with pytest.raises(QueryError, match="nests"):
        parse_query("not " * 500 + 'zip = "1"')


def test_overlong_query_is_refused():
    with pytest.raises(QueryError, match="longer"):
        parse_query('zip = "1" or ' * 1000 + 'zip = "2"')


def test_tokenizer_positions():
    assert [(t.kind, t.position) for t in tokenize('zip>="5"')] == [
        ("word", 0), ("op", 3), ("string", 5), ("end", 8)]


def test_canonical_text_reparses_to_same_tree():
    query = 'not (county = "Cass" or zip ~ "581*") and (topic = "x" and (status = "active"))'
    tree = parse_query(query)
    assert parse_query(to_text(tree)) == tree
    assert to_text(tree) == ('not (county = "Cass" or zip ~ "581*") and (topic = "x" '
                             'and status = "active")')


# --- properties ------------------------------------------------------------------------------

_strings = st.text(max_size=12)
_values = st.one_of(
    st.builds(lambda t: Value("string", t), _strings),
    st.builds(lambda n: Value("number", str(n)), st.integers(-10**6, 10**9)),
    st.builds(lambda d: Value("date", d.isoformat()), st.dates()).filter(
        lambda v: len(v.text) == 10),
)
_fields = st.sampled_from(FIELDS)
_leaves = st.one_of(
    st.builds(Compare, _fields, st.sampled_from(OPERATORS), _values),
    st.builds(In, _fields, st.lists(_values, min_size=1, max_size=3).map(tuple)),
)


_trees = st.recursive(_leaves, lambda children: st.one_of(
    st.builds(Not, children),
    st.lists(children, min_size=2, max_size=3).map(lambda c: And(tuple(c))),
    st.lists(children, min_size=2, max_size=3).map(lambda c: Or(tuple(c))),
), max_leaves=12)


@given(_trees)
def test_round_trip_through_canonical_text(tree):
    assert parse_query(to_text(tree)) == tree


_query_alphabet = st.sampled_from(list('()",=!~<>*-;\'\\ \t\nabcdnotirzpAND0123456789.') + [
    "and", "or", "not", "in", "zip", "county", "topic", "joined", '"x"', "2024-01-01"])


@given(st.one_of(st.text(max_size=60), st.lists(_query_alphabet, max_size=30).map("".join)))
def test_any_text_parses_or_raises_query_error_only(text):
    try:
        tree = parse_query(text)
    except QueryError as exc:
        assert exc.position is not None and 0 <= exc.position <= len(text)
        return
    assert parse_query(to_text(tree)) == tree
