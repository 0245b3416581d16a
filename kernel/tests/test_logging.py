"""Structured JSON logs without personal data."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from upgestao_kernel.logging import (
    PERSONAL_FIELDS,
    Personal,
    bind_request_context,
    clear_request_context,
    configure_logging,
    declare_personal_fields,
    drop_personal_fields,
    get_logger,
)

PERSONAL_VALUES = ("maria@example.com", "+5511999990000", "secret value", "Maria da Silva")


@pytest.fixture
def out():
    """Configure logging into a StringIO; restore logging state afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    fields = set(PERSONAL_FIELDS)
    stream = io.StringIO()
    configure_logging("people", stream=stream)
    clear_request_context()
    yield stream
    clear_request_context()
    for h in root.handlers:
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    structlog.reset_defaults()
    PERSONAL_FIELDS.clear()
    PERSONAL_FIELDS.update(fields)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_without_personal_values(out):
    bind_request_context(request_id="req-1", actor_id="user-7", actor_role="staff")
    log = get_logger("people.service")
    log.info(
        "customer.updated",
        email="maria@example.com",
        payload={"customer": {"phone": "+5511999990000", "id": "c-1"}},
        note=Personal("secret value"),
        contacts=[{"full_name": "Maria da Silva"}, ("kept", Personal("secret value"))],
        count=3,
    )
    logging.getLogger("kombu").warning("x %s", "y")

    text = out.getvalue()
    for value in PERSONAL_VALUES:
        assert value not in text
    records = lines(out)
    assert len(records) == 2
    for record in records:
        assert record["service"] == "people"
        assert record["request_id"] == "req-1" and record["actor_id"] == "user-7"
        assert record["timestamp"].endswith("Z") and "T" in record["timestamp"]

    mine, kombu = records
    assert mine["event"] == "customer.updated" and mine["level"] == "info"
    assert mine["email"] == "[redacted]" and mine["note"] == "[redacted]"
    assert mine["payload"] == {"customer": {"phone": "[redacted]", "id": "c-1"}}
    assert mine["contacts"] == [{"full_name": "[redacted]"}, ["kept", "[redacted]"]]
    assert mine["count"] == 3 and mine["logger"] == "people.service"
    assert kombu["event"] == "x y" and kombu["level"] == "warning" and kombu["logger"] == "kombu"


def test_stdlib_extra_and_structlog_positional_args_redacted(out):
    logging.getLogger("nameko").info("registered", extra={"email": "maria@example.com", "n": 1})
    get_logger().info("hello %s", Personal("Maria da Silva"))
    text = out.getvalue()
    assert "maria@example.com" not in text and "Maria da Silva" not in text
    stdlib_line, struct_line = lines(out)
    assert stdlib_line["email"] == "[redacted]" and stdlib_line["n"] == 1
    assert struct_line["event"] == "hello [redacted]"


def test_exceptions_rendered_as_json(out):
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger().exception("failed", token="abc123")
        logging.getLogger("kombu").exception("stdlib failed")
    structured, stdlib = lines(out)
    for record in (structured, stdlib):
        assert record["level"] == "error"
        assert "Traceback" in record["exception"] and "ValueError: boom" in record["exception"]
    assert structured["token"] == "[redacted]" and "abc123" not in out.getvalue()


def test_idempotent_and_level(out):
    configure_logging("people", level="warning", stream=out)
    ours = [h for h in logging.getLogger().handlers if type(h).__name__ == "_UpgestaoHandler"]
    assert len(ours) == 1
    get_logger().info("hidden")
    get_logger().warning("shown")
    logging.getLogger("amqp").info("hidden too")
    assert [r["event"] for r in lines(out)] == ["shown"]
    with pytest.raises(ValueError):
        configure_logging("people", level="LOUD", stream=out)


def test_declare_personal_fields_and_clear_context(out):
    declare_personal_fields("CPF", "mother_name")
    bind_request_context(request_id="req-2", tenant="t1")
    get_logger().info("a", cpf="123.456.789-00", data={"Mother_Name": "Ana"})
    clear_request_context()
    get_logger().info("b")
    first, second = lines(out)
    assert first["cpf"] == "[redacted]" and first["data"] == {"Mother_Name": "[redacted]"}
    assert first["tenant"] == "t1" and first["request_id"] == "req-2"
    assert "request_id" not in second and "tenant" not in second


def test_processor_does_not_mutate_caller_data():
    payload = {"customer": {"email": "maria@example.com"}, "items": [{"phone": "1"}]}
    event = {"event": "x", "payload": payload, "password": "p", "who": Personal("Maria")}
    result = drop_personal_fields(None, "info", event)
    assert result == {"event": "x", "payload": {"customer": {"email": "[redacted]"},
                                                 "items": [{"phone": "[redacted]"}]},
                      "password": "[redacted]", "who": "[redacted]"}
    assert payload == {"customer": {"email": "maria@example.com"}, "items": [{"phone": "1"}]}
    assert str(Personal("x")) == repr(Personal("x")) == f"{Personal('x')}" == "[redacted]"
    assert Personal("x").value == "x"


def test_deeply_nested_structure_is_bounded():
    deep: dict = {}
    node = deep
    for _ in range(100):
        node["next"] = {}
        node = node["next"]
    node["email"] = "maria@example.com"
    assert "maria@example.com" not in json.dumps(drop_personal_fields(None, "info", {"d": deep}))


def test_a_record_leaves_out_what_no_line_renders(out):
    """No walk up the stack for the caller, no thread lookup (green under eventlet), no process: a line renders
    the event's fields only, and each record is made twice (the formatter copies it)."""
    seen: list[logging.LogRecord] = []
    catcher = logging.Handler()
    catcher.emit = seen.append
    logging.getLogger().addHandler(catcher)
    try:
        get_logger("upgestao.test").info("structured", email="maria@example.com", n=1)
        logging.getLogger("kombu").info("plain", extra={"email": "maria@example.com"})
    finally:
        logging.getLogger().removeHandler(catcher)
    assert [(r.lineno, r.thread, r.process) for r in seen] == [(0, None, None)] * 2
    structured, plain = lines(out)
    assert (structured["event"], structured["email"], structured["n"], structured["logger"]) == (
        "structured", "[redacted]", 1, "upgestao.test")
    assert (plain["event"], plain["email"], plain["logger"]) == ("plain", "[redacted]", "kombu")


def test_nameko_rpc_reply_bodies_are_withheld_at_debug(out):
    """nameko's RPC client logs a reply's whole body at DEBUG (an opened message, a person's fields): the
    line keeps the reply's identity and says the body was withheld, for our handler and any other one."""
    from nameko.rpc import RpcReply
    from upgestao_kernel.logging import REPLY_WITHHELD

    configure_logging("people", level="debug", stream=out)
    other = io.StringIO()
    extra = logging.StreamHandler(other)
    logging.getLogger().addHandler(extra)
    try:
        class Event:
            def wait(self) -> dict:
                return {"result": {"body": "secret value", "email": "maria@example.com"}, "error": None}

        assert RpcReply(Event()).result() == {"body": "secret value", "email": "maria@example.com"}
    finally:
        logging.getLogger().removeHandler(extra)
    complete = [r for r in lines(out) if r["event"].startswith("RPC reply event complete")]
    assert len(complete) == 1 and REPLY_WITHHELD in complete[0]["event"]
    for text in (out.getvalue(), other.getvalue()):
        assert "secret value" not in text and "maria@example.com" not in text
    assert "RPC reply event complete" in other.getvalue()
