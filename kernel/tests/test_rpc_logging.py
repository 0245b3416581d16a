"""What an RPC service answers and logs when a handler raises: a ServiceError is an answer (one
line, no traceback; INFO for a 4xx), a database outage a 503 with Retry-After, anything else a bug
(ERROR with its traceback)."""

from __future__ import annotations

import io
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
import structlog
from nameko.containers import ServiceContainer
from nameko.standalone.rpc import ServiceRpcProxy
from upgestao_kernel.errors import ServiceError, invalid_field
from upgestao_kernel.logging import configure_logging
from upgestao_kernel.nameko_ext import rpc


class AnsweringService:
    name = "answering"

    @rpc
    def refuse(self, status: int) -> None:
        if status == 422:
            raise invalid_field("email", "must be an e-mail address")
        raise ServiceError("conflict" if status < 500 else "service-unavailable", "as asked", status)

    @rpc
    def explode(self) -> None:
        raise RuntimeError("a real bug")


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict]]]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("answering", "INFO", stream=stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    for handler in root.handlers[:]:
        if handler not in saved_handlers:
            root.removeHandler(handler)
    root.setLevel(saved_level)
    structlog.reset_defaults()


@pytest.fixture
def answering(amqp_uri) -> Iterator:
    config = {"AMQP_URI": amqp_uri, "serializer": "json"}
    container = ServiceContainer(AnsweringService, config)
    container.start()
    try:
        with ServiceRpcProxy("answering", config, timeout=10) as proxy:
            yield proxy
    finally:
        container.stop()


def _worker_lines(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line.get("logger") == "nameko.containers" and line["level"] != "debug"]


@pytest.mark.parametrize("status", [401, 404, 409, 422, 429])
def test_a_client_error_is_one_info_line_without_traceback(answering, json_logs, status):
    with pytest.raises(ServiceError) as raised:
        answering.refuse(status)
    assert raised.value.status == status
    lines = _worker_lines(json_logs())
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["level"] == "info"
    assert line["event"] == "rpc.answered_error"
    assert line["status"] == status and line["method"] == "refuse"
    assert "exception" not in line and "Traceback" not in json.dumps(line)
    assert "as asked" not in json.dumps(line) and "must be an e-mail" not in json.dumps(line)  # no free text


def test_an_answered_server_error_is_a_warning_without_traceback(answering, json_logs):
    with pytest.raises(ServiceError):
        answering.refuse(503)
    lines = _worker_lines(json_logs())
    assert [(line["level"], line["event"], line["status"]) for line in lines] == [
        ("warning", "rpc.answered_error", 503)]
    assert "exception" not in lines[0]


def test_a_bug_is_an_error_with_its_traceback(answering, json_logs):
    with pytest.raises(Exception, match="a real bug"):
        answering.explode()
    lines = _worker_lines(json_logs())
    assert len(lines) == 1 and lines[0]["level"] == "error"
    assert "Traceback" in lines[0]["exception"] and "RuntimeError: a real bug" in lines[0]["exception"]


def test_client_errors_are_dropped_when_the_level_is_warning(answering, json_logs):
    logging.getLogger().setLevel(logging.WARNING)
    with pytest.raises(ServiceError):
        answering.refuse(404)
    assert _worker_lines(json_logs()) == []


# -- a database outage is a 503, not a bug -----------------------------------------------------------


class DatabaseService:
    name = "database_user"

    @rpc
    def query(self, url: str, sql: str) -> int:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=_connect_args(url))
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text(sql)).scalar_one()
        finally:
            engine.dispose()


def _connect_args(url: str) -> dict:
    return {"connect_timeout": 2} if url.startswith("postgresql") else {"timeout": 0.2}


@pytest.fixture
def database_user(amqp_uri) -> Iterator:
    config = {"AMQP_URI": amqp_uri, "serializer": "json"}
    container = ServiceContainer(DatabaseService, config)
    container.start()
    try:
        with ServiceRpcProxy("database_user", config, timeout=15) as proxy:
            yield proxy
    finally:
        container.stop()


def test_a_database_that_cannot_be_reached_is_answered_503_with_retry_after(database_user):
    with pytest.raises(ServiceError) as raised:  # nothing listens on port 1
        database_user.query("postgresql+psycopg2://postgres@127.0.0.1:1/nowhere", "SELECT 1")
    assert (raised.value.slug, raised.value.status) == ("service-unavailable", 503)
    assert raised.value.extensions == {"retry_after": 5}


def test_a_locked_sqlite_database_is_answered_503(database_user, tmp_path):
    path = tmp_path / "locked.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(ServiceError) as raised:
            database_user.query(f"sqlite:///{path}", "SELECT count(*) FROM t")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (raised.value.slug, raised.value.status) == ("service-unavailable", 503)


def test_a_query_that_is_wrong_stays_a_bug(database_user, tmp_path):
    """SQLite reports a missing table as an OperationalError too: that is our bug, not an outage."""
    with pytest.raises(Exception) as raised:
        database_user.query(f"sqlite:///{tmp_path / 'empty.sqlite3'}", "SELECT count(*) FROM no_such_table")
    assert not isinstance(raised.value, ServiceError)
    assert "no such table" in str(raised.value)
