"""A claim reads the due messages in order from ``ix_webhook_messages_due_order`` and stops at its limit: it
never sorts every waiting message (a burst of N messages claimed a wave at a time cost N² row visits when it
did), on PostgreSQL and on SQLite; the rows are the oldest due ones, as before."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from upgestao_integrations.adapters.projections import projections
from upgestao_integrations.adapters.secret_box import SecretBox
from upgestao_integrations.adapters.sql_repositories import with_sql_repositories
from upgestao_integrations.service_layer import fanout
from upgestao_integrations.service_layer.registry import Registry
from upgestao_kernel.context import system_context
from upgestao_kernel.db import create_engine
from upgestao_kernel.events import Actor, EventEnvelope, new_id
from upgestao_kernel.migrations import upgrade
from upgestao_kernel.unit_of_work import UnitOfWork

MIGRATIONS = "upgestao_integrations:migrations"
INDEX = "ix_webhook_messages_due_order"
WAITING = 300


def _queue(engine: sa.Engine) -> None:
    def uow():
        return with_sql_repositories(UnitOfWork(engine, "integrations", system_context(), projections=projections()))

    now = lambda: datetime.now(UTC)  # noqa: E731
    registry = Registry(uow, lambda role: frozenset(), SecretBox(bytes(range(32))), production=False, overlap_s=60,
                        now=now)
    registry.register("crm", "http://crm.test/hook", ["*"], [], "https://crm.example/privacy")
    start = now() - timedelta(minutes=5)
    envelopes = [EventEnvelope(event_id=new_id(), stream_id=f"c-{n}", version=1,
                               type="identity.customer_registered.v1", occurred_at=start + timedelta(milliseconds=n),
                               actor=Actor("system", "system"), correlation_id=None, causation_id=None,
                               data={"customer_id": new_id(), "fields": []}) for n in range(WAITING)]
    with uow() as unit:
        fanout.accept_many(unit, "test", envelopes, lambda e: system_context())
    with engine.begin() as conn:  # the messages' attempts due in the past, spread out
        conn.execute(sa.text("UPDATE webhook_messages SET next_attempt_at = occurred_at"))
        # and, as in a table that has been delivering for a while, ten times as many settled ones
        columns = [c.name for c in sa.Table("webhook_messages", sa.MetaData(), autoload_with=conn).columns]
        for n in range(10):
            values = ", ".join({"id": f"id || '-{n}'", "status": "'succeeded'", "next_attempt_at": "NULL",
                                "attempts": "1"}.get(c, c) for c in columns)
            conn.execute(sa.text(f"INSERT INTO webhook_messages ({', '.join(columns)}) SELECT {values} "
                                 "FROM webhook_messages WHERE status = 'pending'"))
        conn.exec_driver_sql("ANALYZE webhook_messages" if engine.dialect.name == "postgresql" else "ANALYZE")


def _due_statement(engine: sa.Engine) -> tuple[list[dict], list]:
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "webhook_messages" in statement and "ORDER BY" in statement:
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        with with_sql_repositories(UnitOfWork(engine, "integrations", system_context())) as unit:
            rows = unit.messages.due(datetime.now(UTC), 16)
            plan = unit.conn.exec_driver_sql(("EXPLAIN (FORMAT JSON) " if engine.dialect.name == "postgresql"
                                         else "EXPLAIN QUERY PLAN ") + seen[-1][0], seen[-1][1]).all()
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    return rows, plan


def _nodes(node: dict) -> list[dict]:
    return [node, *(n for child in node.get("Plans", ()) for n in _nodes(child))]


def _assert_oldest(rows: list[dict]) -> None:
    assert len(rows) == 16
    assert [r["occurred_at"] for r in rows] == sorted(r["occurred_at"] for r in rows)


@pytest.mark.infra
def test_on_postgresql_a_claim_reads_the_index_in_order_without_a_sort(database_factory) -> None:
    engine = create_engine(database_factory("integrations_due", MIGRATIONS))
    _queue(engine)
    rows, plan = _due_statement(engine)
    _assert_oldest(rows)
    document = plan[0][0]
    nodes = _nodes((json.loads(document) if isinstance(document, str) else document)[0]["Plan"])
    kinds = [n["Node Type"] for n in nodes]
    assert "Sort" not in kinds, kinds
    assert any(n.get("Index Name") == INDEX for n in nodes), nodes
    engine.dispose()


def test_on_sqlite_a_claim_reads_the_index_in_order_without_a_sort(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'integrations.db'}"
    upgrade(MIGRATIONS, url)
    engine = create_engine(url)
    _queue(engine)
    rows, plan = _due_statement(engine)
    _assert_oldest(rows)
    details = " | ".join(str(row[-1]) for row in plan)
    assert INDEX in details and "TEMP B-TREE" not in details, details
    engine.dispose()
