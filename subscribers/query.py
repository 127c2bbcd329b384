"""The segment query language: tokenizer, recursive-descent parser and syntax tree.

Grammar (from the product contract; keywords and field names are case-insensitive)::

    query  := or ;  or := and ("or" and)* ;  and := not ("and" not)* ;  not := ["not"] atom
    atom   := "(" query ")" | field op value | field "in" "(" value ("," value)* ")"
    field  := email | name | zip | county | state | district | topic | status | frequency | joined
    op     := "=" | "!=" | "~" | "<" | "<=" | ">" | ">="
    value  := "double-quoted string" | number | ISO date

``not`` may repeat (``not not x``), which the grammar's ``not := ["not"] atom`` allows through a
parenthesised atom anyway. Inside a string, ``\\"`` is a quote and ``\\\\`` a backslash.

This module knows nothing about SQL: ``subscribers.segments`` compiles the tree into bound
SQLAlchemy expressions. ``to_text(parse_query(q))`` is a canonical spelling that parses back to
the same tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from mailer.errors import QueryError

FIELDS = (
    "email", "name", "zip", "county", "state", "district", "topic", "status", "frequency",
    "joined", "constituent", "city",
)
OPERATORS = ("=", "!=", "~", "<", "<=", ">", ">=")
KEYWORDS = ("and", "or", "not", "in")
MAX_LENGTH = 10_000
#: Deep nesting is either an attack or a mistake; refuse it before Python's stack does.
MAX_DEPTH = 100


# --- syntax tree -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Value:
    """A literal. ``kind`` is ``string``, ``number`` or ``date``; ``text`` is the literal as
    written (numbers keep leading zeros, so ZIP ``01234`` stays ``01234``)."""

    kind: str
    text: str
    position: int = 0

    @property
    def as_date(self) -> date | None:
        try:
            return date.fromisoformat(self.text) if _DATE.fullmatch(self.text) else None
        except ValueError:
            return None

    def __eq__(self, other: object) -> bool:  # position is where, not what
        return isinstance(other, Value) and (self.kind, self.text) == (other.kind, other.text)

    def __hash__(self) -> int:
        return hash((self.kind, self.text))


@dataclass(frozen=True, eq=True)
class Compare:
    field: str
    op: str
    value: Value


@dataclass(frozen=True, eq=True)
class In:
    field: str
    values: tuple[Value, ...]


@dataclass(frozen=True, eq=True)
class Not:
    operand: Node


@dataclass(frozen=True, eq=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True, eq=True)
class Or:
    operands: tuple[Node, ...]


Node = Compare | In | Not | And | Or


# --- tokenizer -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    kind: str  # word | string | number | date | op | ( | ) | , | end
    text: str
    position: int


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = " \t\r\n"


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``end`` token.

    Raises QueryError (with the 0-based position) for a character that cannot start a token
    or a string that is never closed.
    """
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in _SPACE:
            i += 1
        elif ch == '"':
            value, i_next = _read_string(text, i)
            tokens.append(Token("string", value, i))
            i = i_next
        elif ch in "(),":
            tokens.append(Token(ch, ch, i))
            i += 1
        elif text.startswith(("!=", "<=", ">="), i):
            tokens.append(Token("op", text[i:i + 2], i))
            i += 2
        elif ch in "=~<>":
            tokens.append(Token("op", ch, i))
            i += 1
        else:
            token = _read_bare(text, i)
            tokens.append(token)
            i += len(token.text)
    tokens.append(Token("end", "", len(text)))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            chars.append(text[i + 1])
            i += 2
        elif ch == '"':
            return "".join(chars), i + 1
        else:
            chars.append(ch)
            i += 1
    raise QueryError("unterminated string (a double quote opened here is never closed)", start)


def _read_bare(text: str, i: int) -> Token:
    match = _DATE.match(text, i)
    if match and not _continues_word(text, match.end()):
        return Token("date", match.group(), i)
    match = _NUMBER.match(text, i)
    if match and not _continues_word(text, match.end()):
        return Token("number", match.group(), i)
    match = _WORD.match(text, i)
    if match:
        return Token("word", match.group(), i)
    shown = text[i]
    if text[i] == "'":
        raise QueryError("strings take double quotes, not single quotes", i)
    raise QueryError(f"unexpected character {shown!r}", i)


def _continues_word(text: str, end: int) -> bool:
    return end < len(text) and (text[end].isalnum() or text[end] in "_.-")


# --- parser ----------------------------------------------------------------------------------

class _Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.current
        if token.kind == "word" and token.text.lower() == word:
            self.advance()
            return True
        return False

    def expect(self, kind: str, what: str) -> Token:
        if self.current.kind != kind:
            raise QueryError(f"expected {what}, found {_describe(self.current)}",
                             self.current.position)
        return self.advance()

    def parse(self) -> Node:
        if self.current.kind == "end":
            raise QueryError("the query is empty", 0)
        node = self.parse_or()
        if self.current.kind != "end":
            raise QueryError(f"expected 'and', 'or' or the end of the query, found "
                             f"{_describe(self.current)}", self.current.position)
        return node

    def parse_or(self) -> Node:
        operands = [self.parse_and()]
        while self.keyword("or"):
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def parse_and(self) -> Node:
        operands = [self.parse_not()]
        while self.keyword("and"):
            operands.append(self.parse_not())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def parse_not(self) -> Node:
        start = self.current.position
        if self.keyword("not"):
            self.enter(start)
            node = Not(self.parse_not())
            self.depth -= 1
            return node
        return self.parse_atom()

    def enter(self, position: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QueryError(f"the query nests more than {MAX_DEPTH} levels deep", position)

    def parse_atom(self) -> Node:
        token = self.current
        if token.kind == "(":
            self.advance()
            self.enter(token.position)
            node = self.parse_or()
            self.depth -= 1
            self.expect(")", "')' to close the '(' at position " + str(token.position))
            return node
        field = self.parse_field()
        if self.keyword("in"):
            return In(field, self.parse_list())
        op = self.current
        if op.kind != "op":
            raise QueryError(f"expected an operator ({', '.join(OPERATORS)}) or 'in' after "
                             f"{field!r}, found {_describe(op)}", op.position)
        self.advance()
        return Compare(field, op.text, self.parse_value())

    def parse_field(self) -> str:
        token = self.current
        if token.kind != "word":
            raise QueryError(f"expected a field name, found {_describe(token)}", token.position)
        name = token.text.lower()
        if name not in FIELDS:
            raise QueryError(f"unknown field {token.text!r} (fields: {', '.join(FIELDS)})",
                             token.position)
        self.advance()
        return name

    def parse_list(self) -> tuple[Value, ...]:
        self.expect("(", "'(' after 'in'")
        values = [self.parse_value()]
        while self.current.kind == ",":
            self.advance()
            values.append(self.parse_value())
        self.expect(")", "',' or ')' in the list")
        return tuple(values)

    def parse_value(self) -> Value:
        token = self.current
        if token.kind not in ("string", "number", "date"):
            hint = " (put text in double quotes)" if token.kind == "word" else ""
            raise QueryError(f"expected a value, found {_describe(token)}{hint}", token.position)
        self.advance()
        return Value(token.kind, token.text, token.position)


def _describe(token: Token) -> str:
    if token.kind == "end":
        return "the end of the query"
    if token.kind == "string":
        return "a string"
    return repr(token.text)


def parse_query(text: str) -> Node:
    """Parse a segment query into its syntax tree.

    Raises QueryError naming the 0-based position of the first problem; never anything else,
    whatever the input.
    """
    if not isinstance(text, str):
        raise QueryError("the query must be text", 0)
    if len(text) > MAX_LENGTH:
        raise QueryError(f"the query is longer than {MAX_LENGTH} characters", MAX_LENGTH)
    return _Parser(text).parse()


# --- canonical text --------------------------------------------------------------------------

def to_text(node: Node) -> str:
    """The canonical spelling of ``node``; ``parse_query(to_text(n)) == n``."""
    if isinstance(node, Compare):
        return f"{node.field} {node.op} {_value_text(node.value)}"
    if isinstance(node, In):
        return f"{node.field} in ({', '.join(_value_text(v) for v in node.values)})"
    if isinstance(node, Not):
        return f"not {_wrapped(node.operand, Not)}"
    if isinstance(node, And):
        return " and ".join(_wrapped(o, And) for o in node.operands)
    return " or ".join(_wrapped(o, Or) for o in node.operands)


def _wrapped(node: Node, parent: type) -> str:
    # Parenthesise anything that binds more loosely than its parent (and nested same-kind
    # groups, which the parser would otherwise flatten).
    loose = {Not: (And, Or), And: (And, Or), Or: (Or,)}[parent]
    text = to_text(node)
    return f"({text})" if isinstance(node, loose) else text


def _value_text(value: Value) -> str:
    if value.kind == "string":
        return '"' + value.text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value.text


__all__ = [
    "And", "Compare", "FIELDS", "In", "KEYWORDS", "Node", "Not", "OPERATORS", "Or", "Token",
    "Value", "parse_query", "to_text", "tokenize",
]
