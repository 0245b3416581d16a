"""Structured logs: one JSON object per line, without personal data.

:func:`configure_logging` routes both structlog and the stdlib ``logging``
(nameko, kombu, amqp, SQLAlchemy...) through one root handler whose
``ProcessorFormatter`` renders JSON, so every line on the stream is JSON with
``timestamp`` (ISO, UTC), ``level``, ``event``, ``service`` and the bound
request context (``request_id``, ``actor_id``, ...).

:func:`drop_personal_fields` runs before rendering on both paths. It redacts
values under personal field names (at any depth) and every :class:`Personal`
value. It cannot see inside free text, so:

* never put personal values in a log *message*, in stdlib ``%s`` arguments or
  in exception messages (tracebacks are rendered verbatim, locals are not);
  pass them as keyword fields, or wrap them in :class:`Personal`;
* objects are rendered with ``repr()``; do not log objects whose repr holds
  personal values.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[redacted]"
_MAX_DEPTH = 32

PERSONAL_FIELDS: set[str] = {
    "full_name", "name", "email", "e_mail", "phone", "birth_date", "address",
    "street", "postal_code", "gender", "photo", "password", "new_password",
    "current_password", "token", "access_token", "refresh_token", "secret",
    "body", "text", "content",
}


class Personal:
    """Wraps a personal value so that it is never logged (repr/str redacted)."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __repr__(self) -> str:
        return REDACTED

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return REDACTED


def declare_personal_fields(*names: str) -> None:
    """Add field names whose values must never be logged."""
    PERSONAL_FIELDS.update(name.lower() for name in names)


def _is_personal_key(key: Any) -> bool:
    return isinstance(key, str) and key.lower() in PERSONAL_FIELDS


def _scrub(value: Any, depth: int) -> Any:
    """A redacted copy of ``value``; the caller's objects are never mutated."""
    if isinstance(value, Personal):
        return REDACTED
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if depth >= _MAX_DEPTH and isinstance(value, (dict, list, tuple, set, frozenset)):
        return "[too deep]"
    if isinstance(value, dict):
        return {k: REDACTED if _is_personal_key(k) else _scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, set, frozenset)):
        return [_scrub(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_scrub(v, depth + 1) for v in value)
    return value


def drop_personal_fields(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: redact personal field names and :class:`Personal` values."""
    out: EventDict = {}
    for key, value in event_dict.items():
        if key == "_record" or key == "exc_info":  # stdlib record / exception, rendered later
            out[key] = value
        elif _is_personal_key(key):
            out[key] = REDACTED
        else:
            out[key] = _scrub(value, 1)
    return out


def _add_service(service: str) -> Processor:
    def add_service(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add_service


def _drop_personal_fields_once(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """The formatter's :func:`drop_personal_fields`: a stdlib record's fields (nameko's, kombu's...); a
    structlog event went through it already, in the chain :func:`configure_logging` gives structlog (the
    only one: nothing is added to an event after it there), and is not scrubbed twice."""
    if event_dict.get("_from_structlog"):
        return event_dict
    return drop_personal_fields(logger, method_name, event_dict)


def _record_only_what_is_rendered() -> None:
    """A stdlib ``LogRecord`` leaves out what no line renders (the lines are the event's fields: see
    :func:`configure_logging`): the caller's file and line (a walk up the stack), the thread (under
    eventlet, a green thread lookup) and the process. The switches the ``logging`` documentation names
    for this ("Optimization"); every record is made twice (the formatter copies it), so this halves the
    cost of a log line."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if hasattr(logging, "logAsyncioTasks"):
        logging.logAsyncioTasks = False


# nameko's RPC client logs every reply's whole body at DEBUG ("RPC reply event complete %s %s"): opened
# messages, a person's fields. The body is withheld from the record before any handler sees it.
_NAMEKO_REPLY_LOGGED = "RPC reply event complete %s %s"
REPLY_WITHHELD = "<reply withheld: it may carry personal data>"


def _withhold_rpc_reply_bodies(record: logging.LogRecord) -> bool:
    if record.msg == _NAMEKO_REPLY_LOGGED and isinstance(record.args, tuple) and len(record.args) == 2:
        record.args = (record.args[0], REPLY_WITHHELD)
    return True


class _UpgestaoHandler(logging.StreamHandler):
    """Marker class: the root handler installed by :func:`configure_logging`."""


def configure_logging(service: str, level: str = "INFO", stream: IO[str] | None = None,
                      trace_ids: bool = False) -> None:
    """Send structlog and stdlib logs of ``service`` as JSON lines to ``stream`` (stdout).

    ``trace_ids``: every line logged while a span is current says its ``trace_id`` and ``span_id`` (the
    process exports traces: :mod:`upgestao_kernel.tracing`), beside the ``request_id`` bound to it.

    Idempotent: a second call replaces the handler installed by the first.
    """
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        raise ValueError(f"unknown log level {level!r}")

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
        _add_service(service),
    ]
    if trace_ids:
        from .tracing import add_trace_ids

        shared.append(add_trace_ids)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            _drop_personal_fields_once,  # before the meta goes: it says whether structlog's chain ran it
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
    )
    _record_only_what_is_rendered()
    handler = _UpgestaoHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _UpgestaoHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric_level)
    rpc_client = logging.getLogger("nameko.rpc")  # on the logger: every handler, ours or another, gets it withheld
    if _withhold_rpc_reply_bodies not in rpc_client.filters:
        rpc_client.addFilter(_withhold_rpc_reply_bodies)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            drop_personal_fields,  # also here: other root handlers see the record too
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        context_class=dict,
        # Not cached: module-level loggers created before (re)configuration follow it.
        cache_logger_on_first_use=False,
    )


def bind_request_context(
    request_id: str | None = None,
    actor_id: str | None = None,
    actor_role: str | None = None,
    **kw: Any,
) -> None:
    """Bind request fields (the non-None ones) to every log line of this context."""
    values = {"request_id": request_id, "actor_id": actor_id, "actor_role": actor_role, **kw}
    structlog.contextvars.bind_contextvars(**{k: v for k, v in values.items() if v is not None})


def clear_request_context() -> None:
    structlog.contextvars.clear_contextvars()


def get_logger(name: str | None = None, **initial_values: Any) -> structlog.stdlib.BoundLogger:
    """A structlog bound logger (stdlib-backed once :func:`configure_logging` ran)."""
    return structlog.stdlib.get_logger(name, **initial_values)


__all__ = [
    "PERSONAL_FIELDS", "REDACTED", "Personal", "bind_request_context", "clear_request_context",
    "configure_logging", "declare_personal_fields", "drop_personal_fields", "get_logger",
]
