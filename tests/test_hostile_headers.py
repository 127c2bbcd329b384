"""A subscriber's name cannot add recipients: whatever it holds (commas, quotes, angle
brackets, addresses, 200 characters of them), the To header of the SMTP message and of the
outbox file names exactly one mailbox, the subscriber's, with the name intact as its display
name; in the SendGrid payload each ``to`` holds that one address, and its name is one
display name however SendGrid writes it into the header."""

from __future__ import annotations

import email
import email.policy
import email.utils
import json
from email.header import decode_header, make_header

import pytest
from aiosmtpd.controller import Controller

from mailer.transports.base import Batch
from mailer.transports.outbox import OutboxTransport
from mailer.transports.sendgrid import build_payload, encode_payload
from mailer.transports.smtp import SMTPTransport
from tests.transports.helpers import message, recipient
from tests.transports.test_smtp import Recorder, _free_port

HOSTILE_NAMES = [
    "Smith, John <evil@example.com>, " * 6,
    ('Smith, John <evil@example.com>, \\" x' * 6)[:200],
    ("Zoë \"Z\" O'Brien, <evil@example.com>; " * 6)[:200],
    "Undisclosed: evil@example.com, other@example.com;",
    "a" + " " * 50 + "b" * 60 + ", evil@example.com",
    "x" * 40 + ", <evil@example.com>",
    "(evil@example.com) \"quoted\" [evil@example.com]",
    "U: e@x.co;",  # short enough for one line: written by the email package itself
    '<e@x.co>, a"b\\',
    "O'Brien, Mary",
    "Pat Doe",
]
ADDRESS = "victim@example.org"


def _batch() -> Batch:
    return Batch(message(), [recipient(i, email=f"{i}.{ADDRESS}", name=name)
                             for i, name in enumerate(HOSTILE_NAMES)])


def _mailboxes(raw: bytes) -> list[tuple[str, str]]:
    """The To header's mailboxes as a strict RFC 5322 / 2047 reader sees them (compat32 +
    decode_header; outer spaces aside), checked against the modern parser's addresses."""
    modern = email.message_from_bytes(raw, policy=email.policy.default)
    legacy = email.message_from_bytes(raw, policy=email.policy.compat32)
    pairs = email.utils.getaddresses(legacy.get_all("To"))
    assert [a.addr_spec for a in modern["To"].addresses] == [a for _, a in pairs]
    return [(str(make_header(decode_header(name))).strip(), addr) for name, addr in pairs]


def _check(raws: list[bytes]) -> None:
    assert len(raws) == len(HOSTILE_NAMES)
    for i, (name, raw) in enumerate(zip(HOSTILE_NAMES, raws, strict=True)):
        assert _mailboxes(raw) == [(name.strip(), f"{i}.{ADDRESS}")], name


def test_outbox_files_address_only_the_subscriber(tmp_path):
    results = OutboxTransport(tmp_path).send(_batch())
    assert all(r.accepted for r in results)
    _check([(tmp_path / r.provider_message_id).read_bytes() for r in results])


def test_an_address_too_long_to_share_a_line_goes_without_the_name(tmp_path):
    long_address = "v" * 80 + "@example.org"
    batch = Batch(message(), [recipient(1, email=long_address, name=HOSTILE_NAMES[0])])
    [result] = OutboxTransport(tmp_path).send(batch)
    assert _mailboxes((tmp_path / result.provider_message_id).read_bytes()) == [
        ("", long_address)]


@pytest.fixture
def smtp_server():
    handler = Recorder()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller, handler
    controller.stop()


def test_smtp_messages_address_only_the_subscriber(smtp_server):
    controller, handler = smtp_server
    results = SMTPTransport("127.0.0.1", controller.port, tls="none").send(_batch())
    assert all(r.accepted for r in results)
    assert [rcpts for _, rcpts, _ in handler.messages] == [
        [f"{i}.{ADDRESS}"] for i in range(len(HOSTILE_NAMES))]
    _check([raw for _, _, raw in handler.messages])


@pytest.mark.parametrize("encode", [build_payload, lambda b: json.loads(encode_payload(b))])
def test_sendgrid_to_is_one_address_with_the_name_as_its_own_field(encode):
    """SendGrid puts ``name <email>`` into the header as given (and documents that a name
    may not hold "," or ";"): that text must still be one mailbox with the name intact."""
    people = encode(_batch())["personalizations"]
    assert len(people) == len(HOSTILE_NAMES)
    for i, (name, person) in enumerate(zip(HOSTILE_NAMES, people, strict=True)):
        [to] = person["to"]
        assert set(to) == {"email", "name"} and to["email"] == f"{i}.{ADDRESS}"
        written = f"{to['name']} <{to['email']}>"
        [(shown, addr)] = email.utils.getaddresses([written])
        assert (shown.strip(), addr) == (name.strip(), to["email"]), written
