import pytest
from pydantic import SecretStr

KEY = "SG.test-key"


@pytest.fixture
def sg_settings(settings, standin):
    """Settings for sending to the stand-in: small batches, fast retries, no grace."""
    return settings.model_copy(update=dict(
        transport="sendgrid", sendgrid_api_key=SecretStr(KEY), sendgrid_host=standin.url,
        sendgrid_timeout=5.0, batch_size=10, concurrency=3, retry_attempts=4,
        retry_backoff=0.01, retry_backoff_max=0.05, in_doubt_grace=0, lease_seconds=30,
        send_processes=1,  # one process unless a test spreads a send on purpose
    ))
