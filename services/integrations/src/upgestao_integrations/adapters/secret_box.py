"""The signing secrets at rest: AES-256-GCM under ``INTEGRATIONS_SECRETS_KEY``, each bound to its ids.

A secret is sealed as base64(nonce | ciphertext) with the associated data ``<integration id>:<secret id>``,
so a sealed value moved to another row or integration does not open.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, integration_id: str, secret_id: str, secret: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode("utf-8"), f"{integration_id}:{secret_id}".encode())
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, integration_id: str, secret_id: str, sealed: str) -> str:
        raw = base64.b64decode(sealed)
        return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:],
                                  f"{integration_id}:{secret_id}".encode()).decode("utf-8")
