"""Personal-data vault (R3.1): crypto-shredding per data subject.

Each data subject gets a random 32-byte data key. Personal values are stored
as AES-256-GCM ciphertexts under that key, with the subject and the field name
bound as associated data. The data key itself is stored in ``subject_keys``,
wrapped (AES-GCM, AAD = subject id) by a master key from
:class:`MasterKeyring`. Shredding a subject deletes its wrapped key: every
ciphertext of the subject becomes noise and decrypts to :data:`ERASED`, while
the events that carry those ciphertexts stay untouched.

Blind indexes (keyed HMAC over a normalised value) allow equality lookups,
e.g. by e-mail, without storing the value in clear.

Every function takes a SQLAlchemy Core ``Connection``; the caller owns the
transaction. Nothing here commits. No data key is cached across calls, so a
shred is effective for the very next read. The one exception is within a single
transaction's *writes*: a key unwrapped to encrypt is reused by the same
transaction's next encryption for that subject (a message sealed, then the
request's reply sealed under the same subject, looked the key up twice), and
forgotten when that transaction ends or shreds the subject. What a concurrent
shred would have refused there is written under a key that no longer exists,
unreadable, as a value sealed a moment earlier in the same transaction is.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import os
import secrets
import unicodedata
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from .config import ConfigError, Settings
from .events import utcnow
from .keys import decode_key as _decode_key
from .keys import generate_key  # noqa: F401  (part of this module's API)
from .keys import local_key_file as _local_key_file
from .schema import subject_keys

KEY_BYTES = 32
NONCE_BYTES = 12
CIPHERTEXT_PREFIX = "v1:"
_PREFIX_LEN = len(CIPHERTEXT_PREFIX)
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
MASTER_KEY_VAR = "UPGESTAO_MASTER_KEY"
BLIND_INDEX_KEY_VAR = "UPGESTAO_BLIND_INDEX_KEY"
_ROTATE_BATCH = 500


class VaultError(Exception):
    """Unknown master key, tampered ciphertext, or a refused operation."""


class Erased:
    """What a value of a shredded subject decrypts to. Use :data:`ERASED`."""

    _instance: Erased | None = None

    def __new__(cls) -> Erased:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __str__(self) -> str:
        return "[erased]"

    def __repr__(self) -> str:
        return "ERASED"

    def __reduce__(self) -> str:
        return "ERASED"


ERASED = Erased()


def is_erased(value: object) -> bool:
    return value is ERASED


# -- master keys ------------------------------------------------------------


def key_id(key: bytes) -> str:
    """First 16 hex characters of SHA-256(key)."""
    return hashlib.sha256(key).hexdigest()[:16]


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise ValueError(f"a key must be {KEY_BYTES} bytes")
    return key


class MasterKeyring:
    """The current master key (wraps new keys) plus previous ones (unwrap only)."""

    def __init__(self, current: bytes, previous: Sequence[bytes] = ()):
        self.current = _check_key(current)
        self.current_kid = key_id(current)
        self._keys: dict[str, bytes] = {self.current_kid: current}
        for key in previous:
            self._keys.setdefault(key_id(_check_key(key)), key)

    @classmethod
    def generate(cls) -> MasterKeyring:
        return cls(secrets.token_bytes(KEY_BYTES))

    @property
    def kids(self) -> tuple[str, ...]:
        """Every key id, the current one first."""
        return tuple(self._keys)

    def merged(self, other: MasterKeyring) -> MasterKeyring:
        """Keyring with ``other``'s current key and every key of both."""
        return MasterKeyring(other.current, [*other._keys.values(), *self._keys.values()])

    def wrap(self, subject_id: str, data_key: bytes) -> tuple[bytes, str]:
        """Encrypt ``data_key`` under the current key -> (nonce || ct, kid)."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        wrapped = nonce + AESGCM(self.current).encrypt(nonce, data_key, subject_id.encode())
        return wrapped, self.current_kid

    def unwrap(self, subject_id: str, wrapped: bytes, kid: str | None) -> bytes:
        key = self._keys.get(kid or "")
        if key is None:
            raise VaultError(
                f"data key of subject {subject_id!r} is wrapped by unknown master key "
                f"{kid!r}; configure it in {MASTER_KEY_VAR} (as a previous key)"
            )
        wrapped = bytes(wrapped)
        try:
            return AESGCM(key).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], subject_id.encode())
        except InvalidTag:
            raise VaultError(f"wrapped data key of subject {subject_id!r} is corrupt") from None


# -- loading keys from the environment -------------------------------------


def _key_or_file(settings: Settings, environ: Mapping[str, str], variable: str, filename: str) -> list[bytes]:
    raw = (environ.get(variable) or "").strip()
    if raw:
        return [_decode_key(variable, part) for part in raw.split(",") if part.strip()]
    if settings.production:
        raise ConfigError(variable, "required in production")
    return [_local_key_file(settings, variable, filename)]


def load_keys(settings: Settings, environ: Mapping[str, str] | None = None) -> tuple[MasterKeyring, bytes]:
    """Master keyring and blind-index key from the environment (or local files).

    ``UPGESTAO_MASTER_KEY``: comma-separated base64 keys, the first current.
    ``UPGESTAO_BLIND_INDEX_KEY``: one base64 key, distinct from the master keys.
    """
    environ = os.environ if environ is None else environ
    master = _key_or_file(settings, environ, MASTER_KEY_VAR, "master.key")
    blind = _key_or_file(settings, environ, BLIND_INDEX_KEY_VAR, "blind-index.key")
    if len(blind) != 1:
        raise ConfigError(BLIND_INDEX_KEY_VAR, "exactly one key expected")
    if blind[0] in master:
        raise ConfigError(BLIND_INDEX_KEY_VAR, f"must differ from every key in {MASTER_KEY_VAR}")
    return MasterKeyring(master[0], master[1:]), blind[0]


# -- the vault --------------------------------------------------------------


def _normalise(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip().casefold()


@functools.lru_cache(maxsize=4096)  # ids and field names only: a page's or a search's subjects, again and again
def _aad(subject_id: str, field: str) -> bytes:
    return json.dumps(["v1", subject_id, field]).encode()


def _check_ids(subject_id: str, field: str | None = None) -> None:
    if not isinstance(subject_id, str) or not subject_id:
        raise VaultError("subject_id must be a non-empty string")
    if field is not None and (not isinstance(field, str) or not field):
        raise VaultError("field must be a non-empty string")


_KEY_ROW = sa.select(subject_keys.c.wrapped_key, subject_keys.c.master_kid, subject_keys.c.shredded_at).where(
    subject_keys.c.subject_id == sa.bindparam("subject_id")
)

_KEY_ROWS = sa.select(subject_keys.c.subject_id, subject_keys.c.wrapped_key, subject_keys.c.master_kid,
                      subject_keys.c.shredded_at).where(
    subject_keys.c.subject_id.in_(sa.bindparam("subject_ids", expanding=True)))


class Vault:
    def __init__(self, keyring: MasterKeyring, blind_index_key: bytes):
        self.keyring = keyring
        self._blind_index_key = _check_key(blind_index_key)
        # transaction -> {subject_id: data key} of the keys it encrypted with (see the module's docstring)
        self._write_keys: weakref.WeakKeyDictionary[Any, dict[str, bytes]] = weakref.WeakKeyDictionary()

    def _write_memo(self, conn: Connection) -> dict[str, bytes] | None:
        # the innermost transaction: a key remembered inside a savepoint is not reused once it ends (rolled back,
        # it may have taken the key's row with it)
        transaction = conn.get_nested_transaction() or conn.get_transaction()
        if transaction is None or not transaction.is_active:
            return None
        memo = self._write_keys.get(transaction)
        if memo is None:
            memo = self._write_keys[transaction] = {}
        return memo

    # key storage

    def _row(self, conn: Connection, subject_id: str) -> sa.Row | None:
        return conn.execute(_KEY_ROW, {"subject_id": subject_id}).first()

    def _data_key(self, conn: Connection, subject_id: str) -> bytes | None:
        """The subject's data key; None if shredded. VaultError if none exists."""
        row = self._row(conn, subject_id)
        if row is None:
            raise VaultError(f"no data key for subject {subject_id!r}")
        return self._unwrapped(subject_id, row)

    def _unwrapped(self, subject_id: str, row: sa.Row) -> bytes | None:
        """The data key of a subject's key row; None if shredded."""
        if row.shredded_at is not None or row.wrapped_key is None:
            return None
        return self.keyring.unwrap(subject_id, row.wrapped_key, row.master_kid)

    def _data_key_for_write(self, conn: Connection, subject_id: str) -> bytes:
        memo = self._write_memo(conn)
        if memo is not None and subject_id in memo:
            return memo[subject_id]
        data_key = self._fetch_data_key_for_write(conn, subject_id)
        if memo is not None:
            memo[subject_id] = data_key
        return data_key

    def _fetch_data_key_for_write(self, conn: Connection, subject_id: str) -> bytes:
        row = self._row(conn, subject_id)
        if row is None:
            data_key = secrets.token_bytes(KEY_BYTES)
            wrapped, kid = self.keyring.wrap(subject_id, data_key)
            try:
                with conn.begin_nested():
                    conn.execute(subject_keys.insert().values(
                        subject_id=subject_id, wrapped_key=wrapped, master_kid=kid,
                        created_at=utcnow(), shredded_at=None,
                    ))
                return data_key
            except IntegrityError:  # another transaction created it first
                row = self._row(conn, subject_id)
                if row is None:
                    raise
        if row.shredded_at is not None or row.wrapped_key is None:
            raise VaultError(f"subject {subject_id!r} is shredded: refusing to store personal data")
        return self.keyring.unwrap(subject_id, row.wrapped_key, row.master_kid)

    # values

    def encrypt(self, conn: Connection, subject_id: str, field: str, value: str | None) -> str | None:
        """``v1:<base64url(nonce || ct)>``; creates the subject's key on first use."""
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"vault values are str, got {type(value).__name__}")
        _check_ids(subject_id, field)
        data_key = self._data_key_for_write(conn, subject_id)
        nonce = secrets.token_bytes(NONCE_BYTES)
        ct = AESGCM(data_key).encrypt(nonce, value.encode(), _aad(subject_id, field))
        return CIPHERTEXT_PREFIX + base64.urlsafe_b64encode(nonce + ct).decode("ascii")

    def decrypt(self, conn: Connection, subject_id: str, field: str, ciphertext: str | None) -> str | Erased | None:
        """The value, :data:`ERASED` for a shredded subject, None for None."""
        return self.decrypt_many(conn, subject_id, {field: ciphertext})[field]

    def decrypt_many(
        self, conn: Connection, subject_id: str, ciphertexts: Mapping[str, str | None]
    ) -> dict[str, str | Erased | None]:
        """Decrypt several fields of one subject with one key lookup."""
        _check_ids(subject_id)
        if all(ct is None for ct in ciphertexts.values()):
            return dict(ciphertexts)
        data_key = self._data_key(conn, subject_id)
        out: dict[str, str | Erased | None] = {}
        for field, ct in ciphertexts.items():
            if ct is None:
                out[field] = None
            elif data_key is None:
                out[field] = ERASED
            else:
                out[field] = _open(data_key, subject_id, field, ct)
        return out

    def decrypt_batch(
        self, conn: Connection, subject_id: str, items: Sequence[Mapping[str, str | None]]
    ) -> list[dict[str, str | Erased | None]]:
        """:meth:`decrypt_many` for several values of one subject (a page of its messages): one key lookup."""
        _check_ids(subject_id)
        if all(ct is None for item in items for ct in item.values()):
            return [dict(item) for item in items]
        return _open_batch(self._data_key(conn, subject_id), subject_id, items)

    def decrypt_subjects(
        self, conn: Connection, batches: Mapping[str, Sequence[Mapping[str, str | None]]]
    ) -> dict[str, list[dict[str, str | Erased | None]]]:
        """:meth:`decrypt_batch` for several subjects at once (a search's hits, of many conversations): one
        statement looks every subject's key up, not one each. By subject, each batch's values in order."""
        for subject_id in batches:
            _check_ids(subject_id)
        wanted = [subject_id for subject_id, items in batches.items()
                  if any(ct is not None for item in items for ct in item.values())]
        rows = {row.subject_id: row for row in conn.execute(_KEY_ROWS, {"subject_ids": wanted})} if wanted else {}
        out: dict[str, list[dict[str, str | Erased | None]]] = {}
        for subject_id, items in batches.items():
            if subject_id not in rows:
                if subject_id in wanted:
                    raise VaultError(f"no data key for subject {subject_id!r}")
                out[subject_id] = [dict(item) for item in items]
                continue
            out[subject_id] = _open_batch(self._unwrapped(subject_id, rows[subject_id]), subject_id, items)
        return out

    def blind_index(self, field: str, value: str) -> str:
        """Keyed, deterministic index for equality lookups (case-insensitive)."""
        msg = (field + "\x00" + _normalise(value)).encode()
        return hmac.new(self._blind_index_key, msg, hashlib.sha256).hexdigest()

    # subjects

    def is_shredded(self, conn: Connection, subject_id: str) -> bool:
        row = self._row(conn, subject_id)
        return row is not None and row.shredded_at is not None

    def shred(self, conn: Connection, subject_id: str) -> bool:
        """Destroy the subject's data key (for good). True if a key was destroyed.

        A subject without a key gets a shredded tombstone, so that nothing can
        be encrypted for it later.
        """
        _check_ids(subject_id)
        for memo in list(self._write_keys.values()):  # every transaction's, a savepoint's enclosing ones too
            memo.pop(subject_id, None)
        for _ in range(2):
            destroyed = conn.execute(
                subject_keys.update()
                .where(subject_keys.c.subject_id == subject_id, subject_keys.c.shredded_at.is_(None))
                .values(wrapped_key=None, master_kid=None, shredded_at=utcnow())
            ).rowcount
            if destroyed:
                return True
            if self._row(conn, subject_id) is not None:
                return False  # already shredded
            try:
                with conn.begin_nested():
                    now = utcnow()
                    conn.execute(subject_keys.insert().values(
                        subject_id=subject_id, wrapped_key=None, master_kid=None,
                        created_at=now, shredded_at=now,
                    ))
                return False
            except IntegrityError:  # created concurrently: shred that one
                continue
        raise VaultError(f"could not shred subject {subject_id!r}")  # pragma: no cover

    def rotate(self, conn: Connection, new_keyring: MasterKeyring) -> int:
        """Re-wrap every live data key under ``new_keyring``'s current key."""
        return rewrap_data_keys(conn, self.keyring, new_keyring)


def _open_batch(data_key: bytes | None, subject_id: str,
                items: Sequence[Mapping[str, str | None]]) -> list[dict[str, str | Erased | None]]:
    """Several values of one subject under its data key (None: shredded, every value :data:`ERASED`)."""
    if data_key is None:
        return [{field: None if ct is None else ERASED for field, ct in item.items()} for item in items]
    # one cipher and one associated data per field for the whole batch (a page: 50 values, one field)
    aead, aads = AESGCM(data_key), {}
    return [{field: None if ct is None else _open_with(
                aead, aads.get(field) or aads.setdefault(field, _aad(subject_id, field)), field, ct)
             for field, ct in item.items()} for item in items]


def _open(data_key: bytes, subject_id: str, field: str, ciphertext: str) -> str:
    return _open_with(AESGCM(data_key), _aad(subject_id, field), field, ciphertext)


def _open_with(aead: AESGCM, aad: bytes, field: str, ciphertext: str) -> str:
    if not isinstance(ciphertext, str) or not ciphertext.startswith(CIPHERTEXT_PREFIX):
        raise VaultError(f"{field}: not a vault ciphertext")
    try:
        # base64.urlsafe_b64decode's decoding (not strict), without its wrappers' calls: a page opens 50 values
        raw = binascii.a2b_base64(ciphertext[_PREFIX_LEN:].encode("ascii").translate(_URLSAFE_TO_STANDARD))
    except (binascii.Error, ValueError):
        raise VaultError(f"{field}: malformed ciphertext") from None
    if len(raw) < NONCE_BYTES + 16:
        raise VaultError(f"{field}: malformed ciphertext")
    try:
        plain = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
    except InvalidTag:
        raise VaultError(
            f"{field}: ciphertext does not authenticate (tampered, or of another subject/field)"
        ) from None
    return plain.decode()


# -- master key rotation ----------------------------------------------------


def rewrap_data_keys(conn: Connection, old_keyring: MasterKeyring, new_keyring: MasterKeyring) -> int:
    """Re-wrap live data keys not yet under ``new_keyring.current``; returns the count.

    Unwraps with any key of old ∪ new. Data ciphertexts are untouched.
    """
    keys = old_keyring.merged(new_keyring)
    target = new_keyring.current_kid
    t = subject_keys.c
    count, after = 0, ""
    while True:
        rows = conn.execute(
            sa.select(t.subject_id, t.wrapped_key, t.master_kid)
            .where(t.wrapped_key.is_not(None), t.master_kid != target, t.subject_id > after)
            .order_by(t.subject_id)
            .limit(_ROTATE_BATCH)
        ).all()
        if not rows:
            return count
        for row in rows:
            data_key = keys.unwrap(row.subject_id, row.wrapped_key, row.master_kid)
            wrapped, kid = new_keyring.wrap(row.subject_id, data_key)
            count += conn.execute(
                subject_keys.update()
                .where(t.subject_id == row.subject_id, t.master_kid == row.master_kid,
                       t.shredded_at.is_(None))
                .values(wrapped_key=wrapped, master_kid=kid)
            ).rowcount
        after = rows[-1].subject_id


def rotate_master_key(engine: Engine, old_keyring: MasterKeyring, new_keyring: MasterKeyring) -> int:
    """Re-wrap every data key under ``new_keyring`` in one transaction."""
    with engine.begin() as conn:
        return rewrap_data_keys(conn, old_keyring, new_keyring)
