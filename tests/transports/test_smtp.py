"""The SMTP transport against a real aiosmtpd server on loopback."""

import datetime
import email
import email.policy
import ipaddress
import socket
import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailer.transports.base import Batch
from mailer.transports.errors import AuthFailure, TemporaryFailure
from mailer.transports.smtp import SMTPTransport
from tests.transports.helpers import message, recipient


class Recorder:
    def __init__(self):
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.sessions: set[int] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address.startswith("refuse"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.sessions.add(id(session))
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK queued"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _authenticator(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == b"office" and \
        data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server():
    handler = Recorder()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port(),
                            authenticator=_authenticator, auth_require_tls=False)
    controller.start()
    yield controller, handler
    controller.stop()


def test_batch_uses_one_connection_and_a_refused_recipient_fails_alone(smtp_server):
    controller, handler = smtp_server
    transport = SMTPTransport("127.0.0.1", controller.port, tls="none")
    batch = Batch(message(), [recipient(1), recipient(2, email="refuse@example.org"),
                              recipient(3)])
    results = transport.send(batch)
    assert [r.accepted for r in results] == [True, False, True]
    assert "550" in results[1].error and "mailbox unavailable" in results[1].error
    assert [m[1] for m in handler.messages] == [["person1@example.org"],
                                                 ["person3@example.org"]]
    assert len(handler.sessions) == 1  # one connection reused across the batch


def test_each_recipient_gets_a_personalized_multipart_message(smtp_server):
    controller, handler = smtp_server
    SMTPTransport("127.0.0.1", controller.port, tls="none").send(
        Batch(message(), [recipient(1, name="O'Brien, Mary")]))
    mail_from, _, raw = handler.messages[0]
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert mail_from == "news@senator.example.gov"
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed["To"].addresses[0].display_name == "O'Brien, Mary"
    assert parsed["List-Unsubscribe"] == "<https://news.senator.example.gov/unsubscribe/tok1>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Subject"] == "Heitkamp acts on trafficking, O'Brien, Mary"
    assert "Dear O'Brien, Mary" in parsed.get_body(("plain",)).get_content()


def test_login(smtp_server):
    controller, handler = smtp_server
    transport = SMTPTransport("127.0.0.1", controller.port, tls="none", username="office",
                              password="s3cret")
    assert transport.send(Batch(message(), [recipient(1)]))[0].accepted
    wrong = SMTPTransport("127.0.0.1", controller.port, tls="none", username="office",
                          password="nope")
    with pytest.raises(AuthFailure, match="535"):
        wrong.send(Batch(message(), [recipient(2)]))
    assert len(handler.messages) == 1


def test_unreachable_server_is_temporary():
    with pytest.raises(TemporaryFailure, match="cannot connect"):
        SMTPTransport("127.0.0.1", _free_port(), tls="none", timeout=2).send(
            Batch(message(), [recipient(1)]))


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_starttls_verifies_the_server_and_then_sends(tmp_path, monkeypatch):
    cert_path, key_path = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    handler = Recorder()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port(),
                            tls_context=context, require_starttls=True)
    controller.start()
    try:
        # Without trusting the certificate, STARTTLS must refuse to go on.
        with pytest.raises(TemporaryFailure, match="CERTIFICATE_VERIFY_FAILED"):
            SMTPTransport("127.0.0.1", controller.port, tls="starttls", timeout=5).send(
                Batch(message(), [recipient(1)]))
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
        results = SMTPTransport("127.0.0.1", controller.port, tls="starttls", timeout=5).send(
            Batch(message(), [recipient(1)]))
    finally:
        controller.stop()
    assert results[0].accepted
    assert len(handler.messages) == 1


def test_implicit_tls(tmp_path, monkeypatch):
    cert_path, key_path = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    handler = Recorder()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port(),
                            ssl_context=context)
    controller.start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
        results = SMTPTransport("127.0.0.1", controller.port, tls="tls", timeout=5).send(
            Batch(message(), [recipient(1), recipient(2)]))
    finally:
        controller.stop()
    assert [r.accepted for r in results] == [True, True]
    assert len(handler.messages) == 2 and len(handler.sessions) == 1
