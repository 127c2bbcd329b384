"""The engine over SMTP (a real aiosmtpd server) when the connection drops mid-batch."""

import pytest
from aiosmtpd.controller import Controller

from mailer.campaigns.models import CampaignStatus as CS
from mailer.delivery.engine import send_campaign
from tests.delivery.test_engine import rows
from tests.support.campaigns import add_subscribers, approved_campaign
from tests.transports.test_smtp import _free_port


class DropsOnce:
    """Stores messages; drops the connection (without answering) on the 3rd DATA."""

    def __init__(self):
        self.stored: list[str] = []
        self.datas = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.datas += 1
        if self.datas == 3:
            server.transport.close()
            return "421 closing"
        self.stored.extend(envelope.rcpt_tos)
        return "250 OK"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_dropped_connection_retries_the_rest_and_settles_the_one_in_flight(db, settings):
    handler = DropsOnce()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        smtp = settings.model_copy(update=dict(
            transport="smtp", smtp_host="127.0.0.1", smtp_port=controller.port,
            smtp_tls="none", batch_size=10, concurrency=1, retry_backoff=0.01,
            retry_backoff_max=0.02, in_doubt_grace=0))
        add_subscribers(db, 10)
        campaign_id = approved_campaign(db)
        summary = send_campaign(db, smtp, campaign_id)
    finally:
        controller.stop()
    assert summary.status == CS.SENT and summary.accepted == 10
    assert sorted(handler.stored) == sorted(f"person{i}@example.org" for i in range(10))
    attempts = {r.email: r.attempts for r in rows(db, campaign_id)}
    # The one in flight when the line dropped was in doubt (SMTP leaves no evidence) and was
    # sent again after the grace; the rest were simply retried within the same claim.
    assert sorted(attempts.values()) == [1] * 9 + [2]
