"""Keyed requests: a write carried out once, its reply kept with its effects, a retry answered from it.

The gateway gives each RPC it makes for a write (POST, PUT, PATCH, DELETE) an *idempotency key*
(the client's ``Idempotency-Key`` header, or one it draws, scoped to the caller). When the answer
does not come back -- the broker went away under the reply, the service was killed after its
commit, a stalled consumer's request was delivered again -- the gateway asks again with the same
key, and the service answers from what it kept instead of acting twice. Without this, a create
whose reply was lost was answered 503 although the customer existed (the chaos suite counted 17
in 30 minutes).

How it holds under any crash: the key's row in ``request_replies`` is inserted by the first unit
of work of the request, in that unit's transaction, so the key exists if and only if some effect of
the request was committed. The request's *last* unit of work does not commit when its ``with``
block ends: its commit is deferred until the method has returned, and the reply is written into
that same transaction (:meth:`KeyedRequest.finish`). So a committed effect always has either its
reply beside it, or (a method of several units killed between two of them) a row that says
"claimed, reply unknown", which a retry answers 503 "outcome unknown" and never runs again. Two
deliveries running at once (a stalled consumer resumed) race on the key's primary key: the loser
blocks until the winner commits, fails its insert, rolls back everything it did, and answers the
winner's reply.

Personal data at rest: a reply that carries one data subject's values is sealed under that
subject's key (erasure shreds it with the rest; a replay then answers 410). A reply that opened
several subjects is not kept, nor is one whose method says ``keep_reply=False`` (replies carrying
credentials: tokens); their retries answer "outcome unknown" / 409. Errors (a
:class:`~upgestao_kernel.errors.ServiceError`) are kept in clear: they carry ids and field names,
no values. Rows are kept for :data:`RETENTION` and then pruned.

A replay is not a new access to personal data: the audit records of the request (same request id)
were written with its effects, and the replay only delivers that request's own reply again to the
same caller (the key's actor is checked). It is logged (``rpc.reply_replayed``), not audited again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .db import read_only
from .errors import ServiceError
from .events import utcnow
from .logging import get_logger
from .schema import request_replies
from .vault import VaultError, is_erased

if TYPE_CHECKING:
    from .unit_of_work import UnitOfWork

log = get_logger(__name__)

RETENTION = timedelta(hours=24)
PRUNE_EVERY_S = 600.0
MAX_KEY_LENGTH = 255
REPLY_FIELD = "request_reply"

CLAIMED, ANSWERED, NOT_KEPT = "claimed", "answered", "not_kept"
Kept = tuple[str, str | None, str | None]  # (state, reply, subject_id) of a key's row


def fingerprint(method: str, args: Iterable[Any], kwargs: dict[str, Any]) -> str:
    """What identifies a request besides its key: a key reused for another request is refused."""
    body = json.dumps([method, list(args), kwargs], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def outcome_unknown() -> ServiceError:
    return ServiceError(
        "service-unavailable",
        "The service restarted while this request was in progress; its outcome is unknown: check, then retry.",
        503, {"retry_after": 1, "outcome": "unknown"},
    )


def key_reused() -> ServiceError:
    return ServiceError("idempotency-key-reused",
                        "This Idempotency-Key was already used for a different request.", 422,
                        {"field": "Idempotency-Key"})


def reply_not_kept() -> ServiceError:
    return ServiceError("request-already-applied",
                        "This request was already carried out; its answer is not kept: check its effect.", 409)


def reply_erased() -> ServiceError:
    return ServiceError("gone",
                        "This request was carried out; its answer held personal data that has since been erased.",
                        410)


# Built once: every keyed write runs them, and building a statement with its values costs more CPU than
# executing a prepared one with parameters.
_CLAIM = request_replies.insert()
_ANSWER = request_replies.update().where(request_replies.c.key == sa.bindparam("the_key"))
_STORED = sa.select(request_replies).where(request_replies.c.key == sa.bindparam("the_key"))


@contextmanager
def _reading(conn: Connection) -> Iterator[Connection]:
    """``conn`` for the look-up, which only reads: on SQLite without the write lock; on PostgreSQL outside
    any transaction, so that its statement is its only round trip (no BEGIN, no ROLLBACK). The driver's
    autocommit flag is set and cleared on the connection itself, as SQLAlchemy's own ping does: its
    ``isolation_level="AUTOCOMMIT"`` would cost a round trip more, to reset the level on return."""
    if conn.dialect.name != "postgresql":
        yield read_only(conn)
        return
    raw = conn.connection.dbapi_connection
    raw.autocommit = True
    try:
        yield conn
    finally:
        if not raw.closed:
            raw.autocommit = False


class KeyedRaced(Exception):
    """Another delivery of the same keyed request claimed the key first."""


class KeyedRequest:
    """One RPC carrying an idempotency key, as the service's units of work see it."""

    _last_pruned: dict[str, float] = {}

    def __init__(self, engine: Engine, vault: Any, *, key: str, method: str, fingerprint: str,
                 actor_id: str | None, keep_reply: bool = True) -> None:
        self.engine = engine
        self.vault = vault
        self.key = key[:MAX_KEY_LENGTH]
        self.method = method
        self.fingerprint = fingerprint
        self.actor_id = actor_id
        self.keep_reply = keep_reply
        self.subjects: set[str] = set()
        self.replayed = False
        self._pending: UnitOfWork | None = None
        self._claim_holder: UnitOfWork | None = None  # the open unit whose transaction holds the key
        self._claimed = False  # the key's row is committed
        self._spare: Connection | None = None  # the look-up's connection, kept for the first unit of work

    # -- before the method runs ------------------------------------------------
    def stored_reply(self) -> tuple[bool, Any]:
        """``(True, result)`` when this key was answered before (raises its stored error, or why it
        cannot be answered); ``(False, None)`` when the request must run."""
        return self._stored_reply(keep=False)

    def before_run(self) -> tuple[bool, Any]:
        """:meth:`stored_reply`, asked before the method runs. When the method must run, on PostgreSQL, the
        look-up's connection (outside any transaction) is kept for the request's first unit of work: one
        checkout from the pool for both. Released by :meth:`finish` or :meth:`abandon` if no unit took it."""
        return self._stored_reply(keep=True)

    def _stored_reply(self, *, keep: bool) -> tuple[bool, Any]:
        conn = self.engine.connect()
        try:
            with _reading(conn) as reading:
                row = reading.execute(_STORED, {"the_key": self.key}).first()
                text = None if row is None else self._kept_reply(reading, row)
            if row is None and keep and conn.dialect.name == "postgresql":
                conn.rollback()  # SQLAlchemy's view of the look-up; the driver has no transaction to end
                self._drop_spare()
                self._spare, conn = conn, None
        finally:
            if conn is not None:
                conn.close()
        if row is None:
            return False, None
        doc = json.loads(text)
        if "error" in doc:
            e = doc["error"]
            raise ServiceError(e["slug"], e["detail"], e["status"], e["extensions"])
        return True, doc["result"]

    def _kept_reply(self, conn: Connection, row: Any) -> str:
        """The text of the reply ``row`` keeps, or the error that says why it cannot be given."""
        if (row.method, row.fingerprint, row.actor_id) != (self.method, self.fingerprint, self.actor_id):
            raise key_reused()
        self.replayed = True
        log.info("rpc.reply_replayed", method=self.method, state=row.state)
        if row.state == NOT_KEPT:
            raise reply_not_kept()
        if row.state != ANSWERED:
            raise outcome_unknown()
        text = row.reply
        if row.subject_id is not None:
            text = self.vault.decrypt(conn, row.subject_id, REPLY_FIELD, text)
            if is_erased(text):
                raise reply_erased()
        return text

    def take_connection(self) -> Connection | None:
        """The connection :meth:`before_run` kept, for the unit of work opening now (None: none kept)."""
        conn, self._spare = self._spare, None
        return conn

    def _drop_spare(self) -> None:
        conn, self._spare = self._spare, None
        if conn is not None:
            conn.close()

    # -- the units of work of the request ------------------------------------
    def begin_unit(self) -> None:
        """A unit of work is about to open: the previous one's deferred commit happens first (never
        two transactions of one request open at once: on SQLite the second would wait for the first)."""
        self._commit_pending()

    def claim(self, uow: UnitOfWork) -> None:
        """In the transaction of the request's first unit of work (or the first after a rollback):
        the key's row, so that the key exists exactly when an effect of the request does."""
        if self._claimed or self._claim_holder is not None:
            return
        # No savepoint: this is the transaction's first statement (the unit opens with it), and a refused
        # insert ends the transaction anyway (the unit rolls back on KeyedRaced). A savepoint cost two more
        # round trips on every keyed write.
        try:
            uow.conn.execute(_CLAIM, {"key": self.key, "method": self.method, "fingerprint": self.fingerprint,
                                      "actor_id": self.actor_id, "state": CLAIMED, "created_at": utcnow()})
        except sa.exc.IntegrityError:
            raise KeyedRaced(self.key) from None
        self._claim_holder = uow

    def note_subject(self, subject_id: str) -> None:
        self.subjects.add(subject_id)

    def defer(self, uow: UnitOfWork) -> None:
        """A unit of work ended well: its commit waits for the reply (or for the next unit)."""
        if self._pending is not None and self._pending is not uow:
            self._commit_pending()
        self._pending = uow

    def rolled_back(self, uow: UnitOfWork) -> None:
        if self._claim_holder is uow:
            self._claim_holder = None

    def _commit_pending(self, reply: Kept | None = None) -> None:
        uow, self._pending = self._pending, None
        if uow is None:
            return
        conn = uow.release()
        try:
            if reply is not None:
                self._answer(conn, reply)
            conn.commit()
        finally:
            conn.close()
        if self._claim_holder is uow:
            self._claim_holder = None
            self._claimed = True

    # -- after the method ------------------------------------------------------
    def finish(self, result: Any, exc_info: tuple | None) -> tuple[Any, tuple | None]:
        """Commit the last unit of work with the reply; the answer to send (which becomes the
        winner's reply after a race, or a 503 when the commit itself failed)."""
        self._drop_spare()  # the method opened no unit of work
        if self.replayed:
            return result, exc_info
        exc = exc_info[1] if exc_info else None
        if isinstance(exc, KeyedRaced):
            self.abandon()
            try:
                found, stored = self.stored_reply()
            except ServiceError as error:
                return None, (ServiceError, error, None)
            if found:
                return stored, None
            return None, (ServiceError, outcome_unknown(), None)
        try:
            if self._pending is not None:
                reply = self._reply(self._pending.conn, result, exc)
                self._commit_pending(reply)
            elif self._claimed and exc is not None:
                # the last unit rolled back after an earlier one committed: keep the error as the answer
                with self.engine.begin() as conn:
                    self._answer(conn, self._reply(conn, result, exc) or (CLAIMED, None, None))
        except Exception as error:  # the commit of the effects failed: they did not happen
            self.abandon()
            log.warning("rpc.keyed_commit_failed", method=self.method, error=type(error).__name__)
            return None, (type(error), error, error.__traceback__)
        self._prune()
        return result, exc_info

    def _answer(self, conn: Connection, reply: Kept) -> None:
        state, text, subject_id = reply
        conn.execute(_ANSWER, {"the_key": self.key, "state": state, "reply": text, "subject_id": subject_id,
                               "answered_at": utcnow()})

    def _reply(self, conn: Connection, result: Any, exc: BaseException | None) -> Kept | None:
        if exc is not None:
            if not isinstance(exc, ServiceError) or exc.status >= 500:
                return None  # a bug or an outage: no answer to keep, the key stays "claimed"
            return ANSWERED, json.dumps({"error": {"slug": exc.slug, "detail": exc.detail, "status": exc.status,
                                                   "extensions": exc.extensions}}), None
        if not self.keep_reply or len(self.subjects) > 1:
            return NOT_KEPT, None, None
        text = json.dumps({"result": result}, default=str)
        if not self.subjects:
            return ANSWERED, text, None
        (subject_id,) = self.subjects
        try:
            return ANSWERED, self.vault.encrypt(conn, subject_id, REPLY_FIELD, text), subject_id
        except VaultError:  # the subject was erased by this very request
            return NOT_KEPT, None, None

    def abandon(self) -> None:
        """Roll back whatever is still open (a failed commit, a worker torn down)."""
        self._drop_spare()
        uow, self._pending = self._pending, None
        if uow is not None:
            conn = uow.release()
            try:
                conn.rollback()
            finally:
                conn.close()
        self._claim_holder = None

    def _prune(self) -> None:
        now = time.monotonic()
        url = str(self.engine.url)
        if now - self._last_pruned.get(url, 0.0) < PRUNE_EVERY_S:
            return
        KeyedRequest._last_pruned[url] = now
        try:
            with self.engine.begin() as conn:
                conn.execute(request_replies.delete().where(request_replies.c.created_at < utcnow() - RETENTION))
        except sa.exc.SQLAlchemyError:
            log.warning("rpc.request_replies_prune_failed", exc_info=True)
