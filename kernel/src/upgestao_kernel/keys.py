"""Keys from the environment, or from local key files outside production.

Shared by the vault (master and blind-index keys) and by services that keep
keys of their own (identity's token signing keys).
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

import structlog

from .config import ConfigError, Settings

KEY_BYTES = 32


def generate_key() -> str:
    """A fresh random 32-byte key, standard base64."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def decode_key(variable: str, text: str) -> bytes:
    """Standard or urlsafe base64, padding optional, exactly 32 bytes."""
    text = text.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(variable, "not valid base64") from None
    if len(key) != KEY_BYTES:
        raise ConfigError(variable, f"a key must be {KEY_BYTES} bytes (base64), got {len(key)}")
    return key


def local_key_file(settings: Settings, variable: str, filename: str) -> bytes:
    """Read, or create once, a local development key under ``data_dir/keys``."""
    log = structlog.get_logger()
    path = Path(settings.data_dir) / "keys" / filename
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{filename}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(generate_key() + "\n")
            try:
                os.link(tmp, path)  # atomic; loses cleanly to a concurrent start
                log.warning(f"{variable} not set: generated a local key file (never use in production)",
                            path=str(path))
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    else:
        log.warning(f"{variable} not set: using the local key file (never use in production)",
                    path=str(path))
    try:
        return decode_key(variable, path.read_text())
    except ConfigError as e:
        raise ConfigError(variable, f"local key file {path}: {e.problem}") from None


