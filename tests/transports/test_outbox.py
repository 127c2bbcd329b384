import email
import email.policy

from mailer.delivery.oneoff import make_test_copy, system_message
from mailer.transports.base import Batch, Recipient
from mailer.transports.outbox import OutboxTransport
from tests.transports.helpers import message, recipient


def test_one_file_per_message_named_by_campaign_and_delivery(tmp_path):
    outbox = OutboxTransport(tmp_path / "outbox")
    results = outbox.send(Batch(message(), [recipient(1), recipient(2)]))
    assert all(r.accepted for r in results)
    names = sorted(p.name for p in (tmp_path / "outbox").iterdir())
    assert names == ["c7-d101.eml", "c7-d102.eml"]
    parsed = email.message_from_bytes((tmp_path / "outbox" / "c7-d101.eml").read_bytes(),
                                      policy=email.policy.default)
    assert parsed["To"].addresses[0].addr_spec == "person1@example.org"
    assert parsed["X-Mailer-Delivery"] == "101"
    assert "Dear Pat Doe" in parsed.get_body(("plain",)).get_content()


def test_sending_a_delivery_again_replaces_its_file_and_leaves_no_temp_files(tmp_path):
    outbox = OutboxTransport(tmp_path)
    outbox.send(Batch(message(), [recipient(1)]))
    outbox.send(Batch(message(subject="Second -name_t-"), [recipient(1)]))
    files = list(tmp_path.iterdir())
    assert [p.name for p in files] == ["c7-d101.eml"]
    assert b"Second Pat Doe" in files[0].read_bytes()


def test_one_off_files_say_what_they_are(tmp_path, settings):
    """A confirmation or welcome email is named after its template, a test copy as a test;
    neither can replace a campaign's delivery file."""
    outbox = OutboxTransport(tmp_path / "outbox")
    confirm = system_message("confirm_subscription", settings, subject="Please confirm",
                             context={"confirm_url": "https://x.example/confirm/t"})
    outbox.send(Batch(confirm, [Recipient(email="new@example.org")]))
    outbox.send(Batch(make_test_copy(message()), [Recipient(email="staff@example.org")]))
    names = sorted(p.name for p in (tmp_path / "outbox").iterdir())
    assert [n.rsplit("-", 1)[0] for n in names] == ["confirm_subscription", "cx-test"]
