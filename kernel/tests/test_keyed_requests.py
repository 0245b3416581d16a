"""Keyed requests: a write carried out once, its reply kept with its effects, a retry answered from it.

The chaos suite's last finding of issue 9: a create whose reply the broker lost (an outage between
the service's commit and its reply) was answered 503 although it had been applied -- 17 times in 30
minutes. With an idempotency key, the caller asks again and is answered from the reply kept in the
transaction of the effects; a request that committed nothing runs; a key reused for another request
is refused; the kept reply holds no personal value in clear.
"""

from __future__ import annotations

import importlib
import json
import time
import uuid

import eventlet
import pytest
import sqlalchemy as sa
from kernel_sample import AccountsProjection, accounts, create_sample_tables, open_account
from kernel_sample_services import LedgerService
from kombu import Connection, Exchange, Queue
from upgestao_kernel.context import RequestContext
from upgestao_kernel.db import create_engine
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.keyed_requests import KeyedRaced, KeyedRequest, fingerprint
from upgestao_kernel.schema import request_replies
from upgestao_kernel.testing import wait_for
from upgestao_kernel.testing_tokens import acting_as
from upgestao_kernel.unit_of_work import UnitOfWork

RPC_EXCHANGE = Exchange("nameko-rpc", type="topic", durable=True)
EMAIL = "keyed-person@example.com"


def audit_records(url: str, account_id: str, action: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT body FROM outbox WHERE exchange = 'audit'")).scalars().all()
    finally:
        engine.dispose()
    records = [json.loads(body) if isinstance(body, str) else body for body in rows]
    return sum(r.get("action") == action and r.get("subject_id") == account_id for r in records)


def accounts_opened(url: str, account_id: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(accounts)
                                .where(accounts.c.id == account_id)).scalar()
    finally:
        engine.dispose()


def kept_row(url: str, key: str):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(request_replies).where(request_replies.c.key == key)).first()
    finally:
        engine.dispose()


class Caller:
    """Publishes RPC requests as the gateway does (headers carry the context) and reads replies."""

    def __init__(self, amqp_uri: str) -> None:
        self.conn = Connection(amqp_uri)
        self.channel = self.conn.channel()
        self.name = f"test-replies-{uuid.uuid4().hex}"
        self.replies = Queue(self.name, exchange=RPC_EXCHANGE, routing_key=self.name, exclusive=True,
                             auto_delete=True)
        self.replies(self.channel).declare()

    def send(self, method: str, args: list, key: str | None, actor: str = "staff-1") -> str:
        correlation_id = uuid.uuid4().hex
        headers = {f"nameko.{k}": v for k, v in acting_as(actor, "admin", request_id=uuid.uuid4().hex).items()}
        if key is not None:
            headers["nameko.idempotency_key"] = key
        self.conn.Producer(self.channel).publish(
            {"args": args, "kwargs": {}}, exchange=RPC_EXCHANGE, routing_key=f"ledger.{method}",
            serializer="json", reply_to=self.name, correlation_id=correlation_id, headers=headers)
        return correlation_id

    def reply(self, correlation_id: str, timeout: float = 15) -> dict:
        message = wait_for(lambda: self.replies(self.channel).get(no_ack=True), timeout=timeout)
        assert message.properties["correlation_id"] == correlation_id
        return message.payload

    def call(self, method: str, args: list, key: str | None, actor: str = "staff-1") -> dict:
        return self.reply(self.send(method, args, key, actor))

    def close(self) -> None:
        self.conn.release()


@pytest.fixture
def ledger(run_service, database_factory, amqp_uri):
    url = database_factory("ledger")
    create_sample_tables(url)
    run_service(LedgerService, None, database_url=url)
    caller = Caller(amqp_uri)
    yield caller, url
    caller.close()


def test_a_retried_write_is_answered_from_its_kept_reply_and_applied_once(ledger):
    caller, url = ledger
    key = f"staff-1:{uuid.uuid4()}:ledger.open_account#1"
    first = caller.call("open_account", ["acc-k1", EMAIL], key)
    again = caller.call("open_account", ["acc-k1", EMAIL], key)
    assert first == again and first["error"] is None and first["result"]["id"] == "acc-k1"
    assert accounts_opened(url, "acc-k1") == 1
    assert audit_records(url, "acc-k1", "create") == 1  # the replay is no second access
    # without the key, the same request runs again (and meets the account that exists)
    assert caller.call("open_account", ["acc-k1", EMAIL], None)["error"] is not None


def test_the_kept_reply_is_sealed_under_its_subject_and_gone_with_it(ledger):
    caller, url = ledger
    key = f"staff-1:{uuid.uuid4()}:ledger.read_email#1"
    caller.call("open_account", ["acc-k2", EMAIL], None)
    assert caller.call("read_email", ["acc-k2"], key)["result"] == EMAIL
    row = kept_row(url, key)
    assert row.state == "answered" and row.subject_id == "acc-k2"
    assert EMAIL not in row.reply and "keyed-person" not in row.reply  # sealed, not clear
    assert caller.call("read_email", ["acc-k2"], key)["result"] == EMAIL
    assert audit_records(url, "acc-k2", "read") == 1
    # erasure shreds the subject's key: the kept reply can no longer be opened
    from upgestao_kernel.config import load_settings
    from upgestao_kernel.vault import Vault, load_keys
    keyring, blind = load_keys(load_settings("ledger"), {})
    engine = create_engine(url)
    with engine.begin() as conn:
        assert Vault(keyring, blind).shred(conn, "acc-k2")
    engine.dispose()
    error = caller.call("read_email", ["acc-k2"], key)["error"]
    assert error["exc_type"] == "ServiceError" and "has since been erased" in error["value"]


def test_a_key_reused_for_another_request_or_by_another_caller_is_refused(ledger):
    caller, url = ledger
    key = f"staff-1:{uuid.uuid4()}:ledger.open_account#1"
    assert caller.call("open_account", ["acc-k3", EMAIL], key)["error"] is None
    other = caller.call("open_account", ["acc-k4", EMAIL], key)["error"]
    assert "idempotency-key-reused" in other["value"]
    intruder = caller.call("open_account", ["acc-k3", EMAIL], key, actor="intruder")["error"]
    assert "idempotency-key-reused" in intruder["value"]
    assert accounts_opened(url, "acc-k4") == 0


def test_a_keyed_request_delivered_again_after_its_effects_answers_the_kept_reply(ledger, run_service, monkeypatch):
    """The broker goes away under the reply: the request stays unacknowledged and comes back.
    Unkeyed, that is "outcome unknown" (503) though it was applied; keyed, it is its reply."""
    from kombu.exceptions import OperationalError as KombuOperationalError
    kernel_rpc = importlib.import_module("upgestao_kernel.nameko_ext.rpc")
    caller, url = ledger
    publish = kernel_rpc.TransientPublisher.publish
    failed = []

    def publish_once_failing(self, payload, **kwargs):
        if not failed and kwargs.get("routing_key", "") == caller.name:
            failed.append(kwargs["correlation_id"])
            raise KombuOperationalError("[Errno 111] ECONNREFUSED")
        return publish(self, payload, **kwargs)

    monkeypatch.setattr(kernel_rpc.TransientPublisher, "publish", publish_once_failing)
    key = f"staff-1:{uuid.uuid4()}:ledger.open_account#1"
    correlation_id = caller.send("open_account", ["acc-k5", EMAIL], key)
    wait_for(lambda: failed == [correlation_id], timeout=10)
    assert accounts_opened(url, "acc-k5") == 1  # applied, its reply lost
    container, proxy_ctx = run_service.started[0]
    proxy_ctx.stop()
    container.stop()  # the broker takes the unacknowledged request back
    run_service(LedgerService, None, database_url=url)
    reply = caller.reply(correlation_id)
    assert reply["error"] is None and reply["result"]["id"] == "acc-k5"
    assert accounts_opened(url, "acc-k5") == 1 and audit_records(url, "acc-k5", "create") == 1


def test_a_keyed_request_that_committed_nothing_runs_when_delivered_again(ledger, run_service, amqp_uri):
    caller, url = ledger
    container, proxy_ctx = run_service.started[0]
    proxy_ctx.stop()
    container.stop()
    key = f"staff-1:{uuid.uuid4()}:ledger.open_account#1"
    correlation_id = caller.send("open_account", ["acc-k6", EMAIL], key)
    doomed = Connection(amqp_uri)  # a consumer takes it and dies before running it
    taken = Queue("rpc-ledger", exchange=RPC_EXCHANGE, routing_key="ledger.*", durable=True)(doomed.channel())
    wait_for(lambda: taken.get(no_ack=False), timeout=10)
    doomed.release()
    run_service(LedgerService, None, database_url=url)
    reply = caller.reply(correlation_id)
    assert reply["error"] is None and reply["result"]["id"] == "acc-k6"  # not "outcome unknown"
    assert accounts_opened(url, "acc-k6") == 1


def test_a_failure_to_keep_the_reply_undoes_the_effects(ledger, monkeypatch):
    """The reply is written in the transaction of the effects: when that fails, neither happened."""
    caller, url = ledger

    def failing(self, conn, result, exc):
        import psycopg2  # as PostgreSQL going away under the commit reports it
        raise sa.exc.OperationalError("UPDATE request_replies", {},
                                      psycopg2.OperationalError("server closed the connection unexpectedly"))

    monkeypatch.setattr(KeyedRequest, "_reply", failing)
    key = f"staff-1:{uuid.uuid4()}:ledger.open_account#1"
    error = caller.call("open_account", ["acc-k7", EMAIL], key)["error"]
    assert error["exc_type"] == "ServiceError" and "service-unavailable" in error["value"], error
    assert accounts_opened(url, "acc-k7") == 0 and kept_row(url, key) is None
    assert audit_records(url, "acc-k7", "create") == 0
    monkeypatch.undo()
    assert caller.call("open_account", ["acc-k7", EMAIL], key)["result"]["id"] == "acc-k7"  # the retry runs


def test_two_deliveries_at_once_run_once_and_both_answer_the_winners_reply(pg_engine, vault):
    """A stalled consumer resumes while its request, delivered again, already runs elsewhere."""
    key = f"staff-1:{uuid.uuid4()}:ledger.open_account#1"
    context = RequestContext(request_id="r-1", actor_id="staff-1", actor_role="admin")

    def request() -> KeyedRequest:
        return KeyedRequest(pg_engine, vault, key=key, method="open_account",
                            fingerprint=fingerprint("open_account", ("acc-k8",), {}), actor_id="staff-1")

    def unit(keyed: KeyedRequest) -> UnitOfWork:
        return UnitOfWork(pg_engine, "ledger", context, projections=[AccountsProjection()], vault=vault,
                          request=keyed)

    winner, loser = request(), request()
    with unit(winner) as uow:
        open_account(uow, "acc-k8", EMAIL)
    outcome = {}

    def second() -> None:
        try:
            with unit(loser) as uow:
                open_account(uow, "acc-k8", EMAIL)
            outcome["answer"] = loser.finish({"id": "acc-k8", "by": "loser"}, None)
        except KeyedRaced as exc:
            outcome["answer"] = loser.finish(None, (KeyedRaced, exc, None))

    thread = eventlet.spawn(second)
    eventlet.sleep(0.3)  # the loser waits on the key the winner holds
    assert "answer" not in outcome
    assert winner.finish({"id": "acc-k8", "by": "winner"}, None) == ({"id": "acc-k8", "by": "winner"}, None)
    thread.wait()
    assert outcome["answer"] == ({"id": "acc-k8", "by": "winner"}, None)
    with pg_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(accounts)).scalar() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(request_replies)).scalar() == 1


def test_the_look_up_of_a_key_on_postgresql_is_its_one_statement_outside_any_transaction(pg_engine, vault):
    """Before every keyed write: no BEGIN and no ROLLBACK around the look-up (two round trips of three),
    and the connection goes back to the pool transactional again."""
    key = f"staff-1:{uuid.uuid4()}:ledger.open_account#1"
    context = RequestContext(request_id="r-2", actor_id="staff-1", actor_role="admin")

    def request(the_key: str) -> KeyedRequest:
        return KeyedRequest(pg_engine, vault, key=the_key, method="open_account",
                            fingerprint=fingerprint("open_account", ("acc-k9",), {}), actor_id="staff-1")

    first = request(key)
    with UnitOfWork(pg_engine, "ledger", context, projections=[AccountsProjection()], vault=vault,
                    request=first) as uow:
        open_account(uow, "acc-k9", EMAIL)
    assert first.finish({"id": "acc-k9"}, None) == ({"id": "acc-k9"}, None)

    seen: list[tuple[object, bool]] = []

    def statement(conn, cursor, statement, parameters, context, executemany) -> None:
        raw = conn.connection.dbapi_connection
        seen.append((raw, raw.autocommit))

    sa.event.listen(pg_engine, "before_cursor_execute", statement)
    try:
        assert request(key).stored_reply() == (True, {"id": "acc-k9"})
        assert request(f"staff-1:{uuid.uuid4()}:x").stored_reply() == (False, None)
    finally:
        sa.event.remove(pg_engine, "before_cursor_execute", statement)
    # the kept reply's row and its subject's key (the reply is sealed); the new key's row: no transaction
    assert [autocommit for _, autocommit in seen] == [True, True, True]
    assert all(raw.autocommit is False for raw, _ in seen)  # back in the pool as it was taken


def test_the_first_unit_of_work_runs_on_the_connection_its_key_was_looked_up_on(engine, vault, monkeypatch):
    """On PostgreSQL one checkout from the pool for the look-up and the first unit; a connection kept for a
    method that then opens no unit (a refusal before any) goes back when the request finishes or is
    abandoned. SQLite's look-up reads a snapshot in a transaction of its own: nothing is kept there."""
    keeps = engine.dialect.name == "postgresql"
    monkeypatch.setitem(KeyedRequest._last_pruned, str(engine.url), time.monotonic())  # no pruning's checkout
    context = RequestContext(request_id="r-3", actor_id="staff-1", actor_role="admin")
    checkouts: list[object] = []
    sa.event.listen(engine, "checkout", lambda dbapi_conn, record, proxy: checkouts.append(dbapi_conn))

    def request(account_id: str) -> KeyedRequest:
        return KeyedRequest(engine, vault, key=f"staff-1:{uuid.uuid4()}:x", method="open_account",
                            fingerprint=fingerprint("open_account", (account_id,), {}), actor_id="staff-1")

    keyed = request("acc-k10")
    assert keyed.before_run() == (False, None)
    assert engine.pool.checkedout() == (1 if keeps else 0)
    with UnitOfWork(engine, "ledger", context, projections=[AccountsProjection()], vault=vault,
                    request=keyed) as uow:
        open_account(uow, "acc-k10", EMAIL)
    assert keyed.finish({"id": "acc-k10"}, None) == ({"id": "acc-k10"}, None)
    assert len(checkouts) == (1 if keeps else 2) and engine.pool.checkedout() == 0
    assert request("acc-k10").stored_reply() == (False, None)  # another key
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(accounts)).scalar() == 1

    refused = request("acc-k11")
    assert refused.before_run() == (False, None)
    error = ServiceError("invalid", "no", 422)
    assert refused.finish(None, (ServiceError, error, None))[1][1] is error
    abandoned = request("acc-k12")
    assert abandoned.before_run() == (False, None)
    abandoned.abandon()
    assert engine.pool.checkedout() == 0
