"""Webhook fixtures shared by the tracking tests: our own P-256 key pair signing posts the
way SendGrid does, and settings whose webhook verifies them."""

from __future__ import annotations

import base64
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from mailer.tracking.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER


class Signer:
    """Signs posts the way SendGrid does, with a P-256 key made for the test."""

    def __init__(self):
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.public_key = base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        timestamp = timestamp or str(int(time.time()))
        signature = self.private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {SIGNATURE_HEADER: base64.b64encode(signature).decode(),
                TIMESTAMP_HEADER: timestamp, "Content-Type": "application/json"}


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def own_settings(settings, signer):
    """The webhook on, verifying ``signer``'s posts, with room for a 5000-deep body."""
    return settings.model_copy(update={
        "sendgrid_webhook_public_key": SecretStr(signer.public_key), "webhook_max_age": 300,
        "webhook_max_body": 64 * 1024})
