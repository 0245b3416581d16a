"""``rpc``: nameko's RPC entrypoint, answering with transient messages.

An RPC reply is worth nothing once its caller has timed out, so writing it to
disk buys nothing: nameko publishes replies persistent, and a persistent
message is confirmed only after the broker's fsync (measured here: ~1,400
confirmed persistent publishes/s against ~5,000 transient). Replies stay
confirmed, so a reply the broker refused still raises. They go out through one
publisher per container (:class:`TransientPublisher`), serialized once.

A :class:`~upgestao_kernel.errors.ServiceError` (any subclass) is answered as
the base class, which callers rebuild as an instance (not a ``RemoteError``),
so the gateway can turn it into a precise problem document. A domain's refusal
(a :class:`~upgestao_kernel.errors.DomainError`) becomes the ServiceError its
row in :data:`PROBLEMS` makes: the kernel's rows (an event stream changed by a
concurrent request: a 409 ``conflict``, never a 500) plus each service's table,
registered with :func:`register_problems` by its entrypoints. A database that
cannot be reached (SQLAlchemy's ``OperationalError``: a restart, a failover, a
lost connection) is answered as a 503 ``service-unavailable`` with
``retry_after``, not as an unexpected error (a 500).

A request is run at most once: one the broker delivers again (its first consumer
went away without acknowledging it, perhaps after running it and replying) is
answered 503 "outcome unknown" instead of being run a second time, which would
repeat its effects and its audit records (found by the chaos suite: a service
killed between its reply and its ack). A request that carries an idempotency key
(the gateway's writes, :mod:`upgestao_kernel.keyed_requests`) does better: its
reply is kept in the transaction of its effects, and a second delivery, or the
caller's retry, is answered from it; one that never committed anything runs.

A ServiceError is an answer, not a failure of the service: nameko logs every
"expected" exception at WARNING with its traceback, which buried real errors
under thousands of client mistakes. :class:`AnsweredErrors` rewrites that line:
a 4xx is one INFO line (``rpc.answered_error``, no traceback); a 5xx the
service chose to answer stays a WARNING, without a traceback either (its
detail says what happened). Anything else a handler raises is a bug: nameko
logs it at ERROR with its traceback, untouched.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
from collections.abc import Mapping
from typing import Any

import kombu.serialization
from amqp.exceptions import ChannelError as AMQPChannelError
from amqp.exceptions import ConnectionError as AMQPConnectionError
from kombu import Connection
from kombu.exceptions import OperationalError as KombuOperationalError
from kombu.pools import producers
from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_TRANSPORT_OPTIONS,
    LOGIN_METHOD_CONFIG_KEY,
    NON_PERSISTENT,
)
from nameko.exceptions import IncorrectSignature, UnserializableValueError, deserialize_to_instance, serialize
from nameko.rpc import Rpc as NamekoRpc
from nameko.rpc import RpcConsumer, get_rpc_exchange
from sqlalchemy.exc import OperationalError

from ..errors import ProblemFactory, Problems, ServiceError, problem
from ..eventstore import ConcurrencyError
from ..keyed_requests import outcome_unknown
from ..logging import get_logger
from .database import IDEMPOTENCY_KEY, ServiceDatabase
from .principals import stamp_caller

deserialize_to_instance(ServiceError)

log = get_logger(__name__)
_CONTAINER_LOGGER = "nameko.containers"
_EXPECTED_PREFIX = "(expected) error handling worker"


class AnsweredErrors(logging.Filter):
    """On nameko's container logger: a ServiceError handed back to the caller, logged as an answer."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, ServiceError) or not str(record.msg).startswith(_EXPECTED_PREFIX):
            return True
        level = logging.INFO if exc.status < 500 else logging.WARNING
        if not logging.getLogger(record.name).isEnabledFor(level):
            return False
        worker_ctx = record.args[0] if isinstance(record.args, tuple) and record.args else None
        entrypoint = getattr(worker_ctx, "entrypoint", None)
        record.levelno, record.levelname = level, logging.getLevelName(level)
        record.msg, record.args = "rpc.answered_error", ()
        record.exc_info, record.exc_text = None, None
        record.error_type = exc.slug
        record.status = exc.status
        record.method = getattr(entrypoint, "method_name", None)
        if exc.__cause__ is not None and PROBLEMS.answer(exc.__cause__) is not None:
            record.refusal = type(exc.__cause__).__name__  # what the domain said, before the edge's table
        return True


def install_answered_errors_filter() -> None:
    """Idempotent: the filter once on nameko's container logger."""
    logger = logging.getLogger(_CONTAINER_LOGGER)
    if not any(isinstance(f, AnsweredErrors) for f in logger.filters):
        logger.addFilter(AnsweredErrors())


install_answered_errors_filter()


class TransientPublisher(Publisher):
    """The publisher of a container's RPC replies: transient, confirmed, on the RPC exchange.

    nameko's ``Responder`` builds a publisher for every reply, whose ``publish`` builds a kombu ``Connection``
    (parsing the broker URI) only to find the pooled producer by it; this one describes the connection once
    (the description nameko's makes, so the same producer pool) and publishes as nameko's does.
    """

    delivery_mode = NON_PERSISTENT

    def __init__(self, config: Mapping[str, Any]) -> None:
        amqp_uri = config[AMQP_URI_CONFIG_KEY]
        ssl, login_method = config.get(AMQP_SSL_CONFIG_KEY), config.get(LOGIN_METHOD_CONFIG_KEY)
        super().__init__(amqp_uri, ssl=ssl, login_method=login_method)
        self.exchange = get_rpc_exchange(config)
        self.connection = Connection(amqp_uri, transport_options={**DEFAULT_TRANSPORT_OPTIONS, "confirm_publish": True},
                                     ssl=ssl, login_method=login_method)

    def publish(self, payload: bytes | str, **kwargs: Any) -> None:
        """Publish one serialized reply (``content_type``, ``content_encoding``, ``routing_key``,
        ``correlation_id``); raises what the broker or the connection raised (confirmed)."""
        with producers[self.connection].acquire(block=True) as producer:
            producer.publish(payload, exchange=self.exchange, headers={}, delivery_mode=self.delivery_mode,
                             retry=self.retry, retry_policy=self.retry_policy, **kwargs)


def reply_body(message, result: Any, exc_info) -> tuple[Any, Any, tuple[str, str, bytes | str]]:
    """The reply to ``message`` (``{"result", "error"}``) serialized as the request was (its content type), and the
    result and ``exc_info`` it stands for: as nameko's ``Responder`` answers, a result that cannot be serialized
    is answered as an ``UnserializableValueError`` (its ``exc_info`` the serializer's error), but serialized
    once, not once to check it and again to publish it."""
    error = serialize(exc_info[1]) if exc_info is not None else None
    serializer = kombu.serialization.registry.type_to_name[message.properties["content_type"]]
    try:
        return result, exc_info, kombu.serialization.dumps({"result": result, "error": error}, serializer)
    except Exception:  # noqa: BLE001 - the result does not serialize (an error's serialized form always does)
        exc_info = sys.exc_info()
        error = serialize(UnserializableValueError(result))
        return None, exc_info, kombu.serialization.dumps({"result": None, "error": error}, serializer)


DATABASE_UNAVAILABLE_RETRY_S = 5


def is_database_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached or used now (not that the query is wrong):
    a connection SQLAlchemy invalidated, any PostgreSQL (psycopg2) ``OperationalError`` (connection
    refused or lost, the server shutting down, a statement timeout), SQLite's busy or unopenable file.
    SQLite also reports a missing table as an ``OperationalError``: that stays a bug (a 500)."""
    if not isinstance(exc, OperationalError):
        return False
    if exc.connection_invalidated:
        return True
    if type(exc.orig).__module__.split(".")[0] == "psycopg2":
        return True
    message = str(exc.orig).lower()
    return "database is locked" in message or "unable to open database" in message


def database_unavailable() -> ServiceError:
    return ServiceError("service-unavailable", "The service's database is unavailable; try again shortly.", 503,
                        {"retry_after": DATABASE_UNAVAILABLE_RETRY_S})


# What a reply's publish raises when the broker cannot be reached (kombu wraps socket errors).
REPLY_LOST = (KombuOperationalError, ConnectionError, OSError, AMQPConnectionError)


request_interrupted = outcome_unknown
KEY_HEADER = f"nameko.{IDEMPOTENCY_KEY}"


class TransientRpcConsumer(RpcConsumer):
    reply_publisher: TransientPublisher | None = None

    def setup(self) -> None:
        super().setup()
        if self.reply_publisher is None:
            self.reply_publisher = TransientPublisher(self.container.config)
        self._by_routing_key: dict[str, Any] = {}

    def get_provider_for_method(self, routing_key):
        """The entrypoint of ``routing_key`` (``<service>.<method>``), found once (nameko formats the key of every
        method of the service to find it, for every request); ``MethodNotFound`` as nameko raises it."""
        provider = self._by_routing_key.get(routing_key)
        if provider is None or provider not in self._providers:  # (one stopped since: nameko's answer)
            provider = self._by_routing_key[routing_key] = super().get_provider_for_method(routing_key)
        return provider

    def handle_message(self, body, message):
        """A request the broker delivers again was delivered before to a consumer that went away
        without acknowledging it: it may have been carried out, its reply even sent (a service
        killed between its reply and its ack). Running it again would repeat its effects and its
        audit records, so it is answered as interrupted (503), never run twice. The caller, if it
        still waits, learns at once instead of at its timeout; a caller already answered ignores it."""
        if message.delivery_info.get("redelivered") and not (message.headers or {}).get(KEY_HEADER):
            log.warning("rpc.redelivery_refused", method=message.delivery_info.get("routing_key"),
                        correlation_id=message.properties.get("correlation_id"))
            self.handle_result(message, None, (ServiceError, request_interrupted(), None))
            return
        super().handle_message(body, message)

    def handle_result(self, message, result, exc_info):
        if exc_info is not None and is_database_outage(exc_info[1]):
            # the database went away (a restart, a failover, a lost connection): an outage, not a bug of
            # the request; answered 503 with Retry-After (nameko logged it at ERROR with its traceback)
            exc_info = (ServiceError, database_unavailable(), exc_info[2])
        elif exc_info is not None and isinstance(exc_info[1], ServiceError):
            exc_info = (ServiceError, exc_info[1].as_base(), exc_info[2])
        result, exc_info, (content_type, content_encoding, body) = reply_body(message, result, exc_info)
        try:
            self.reply_publisher.publish(body, content_type=content_type, content_encoding=content_encoding,
                                         routing_key=message.properties["reply_to"],
                                         correlation_id=message.properties.get("correlation_id"))
        except AMQPChannelError as exc:
            # The broker refused the reply (a reply_to this service's user may not publish to): the
            # caller's mistake or an attack, not a reason to die. The request ran; it is acknowledged.
            log.warning("rpc.reply_refused", method=message.delivery_info.get("routing_key"),
                        correlation_id=message.properties.get("correlation_id"), error=type(exc).__name__)
        except REPLY_LOST as exc:
            # The broker went away under the reply (a restart): nameko would let this kill the whole
            # service. The request stays unacknowledged, so the broker delivers it again, and it is
            # then answered as interrupted (handle_message); the caller meanwhile times out.
            log.warning("rpc.reply_lost", method=message.delivery_info.get("routing_key"),
                        correlation_id=message.properties.get("correlation_id"), error=type(exc).__name__)
            return result, exc_info
        try:
            self.queue_consumer.ack_message(message)
        except REPLY_LOST as exc:  # the same outage, a moment later: the request comes back, refused
            log.warning("rpc.ack_lost", method=message.delivery_info.get("routing_key"),
                        correlation_id=message.properties.get("correlation_id"), error=type(exc).__name__)
        return result, exc_info


CONCURRENT_CHANGE = "This was changed by someone else meanwhile; reload and retry."

# The edge's table: the kernel's own rows; each service adds its domain's with register_problems().
PROBLEMS = Problems({
    # optimistic concurrency: two requests changed one aggregate at once and this one lost (nothing written)
    ConcurrencyError: problem("conflict", 409, CONCURRENT_CHANGE),
})


def register_problems(rows: Mapping[type[BaseException], ProblemFactory]) -> None:
    """Answer these exceptions (a service's domain errors) as the problems their rows make."""
    PROBLEMS.register(rows)


def translating(fn):
    """The method, a refusal it raises answered as the problem of its row in :data:`PROBLEMS`
    (unmapped exceptions pass unchanged: a bug stays a bug)."""

    @functools.wraps(fn)
    def method(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except ServiceError:
            raise
        except Exception as exc:
            answer = PROBLEMS.answer(exc)
            if answer is None:
                raise
            raise answer from exc

    method.__signature__ = inspect.signature(fn)
    return method


def _keyed(service) -> ServiceDatabase | None:
    for value in vars(service).values():
        if isinstance(value, ServiceDatabase) and value.keyed is not None:
            return value
    return None


def replaying(fn):
    """The method, unless its keyed request was answered before: then that answer, unchanged."""

    @functools.wraps(fn)
    def method(self, *args, **kwargs):
        db = _keyed(self)
        if db is not None:
            found, stored = db.keyed.before_run()  # raises the stored error, or why none can be given
            if found:
                return stored
        return fn(self, *args, **kwargs)

    # nameko checks a request's arguments (and redacts sensitive ones) against the signature
    method.__signature__ = inspect.signature(fn)
    return method


class Rpc(NamekoRpc):
    """nameko's ``@rpc`` with transient replies, at-most-once requests, keyed requests and domain errors
    answered as problems.

    ``keep_reply=False``: a method whose answer must not be stored (it carries credentials); a keyed
    retry of it, once it ran, is answered 409 instead of from a stored reply.
    """

    rpc_consumer = TransientRpcConsumer()
    keyed_requests = True

    def __init__(self, expected_exceptions=ServiceError, keep_reply: bool = True, **kwargs):
        # A ServiceError is an answer, not a failure: no traceback in the logs.
        super().__init__(expected_exceptions=expected_exceptions, **kwargs)
        self.keep_reply = keep_reply

    @classmethod
    def decorator(cls, *args, **kwargs):
        if len(args) == 1 and not kwargs and callable(args[0]):
            return super().decorator(replaying(translating(args[0])))
        registering = super().decorator(*args, **kwargs)
        return lambda fn: registering(replaying(translating(fn)))

    @property
    def method_signature(self) -> inspect.Signature:
        """The signature of the service's method (``self`` first), read once."""
        signature = self.__dict__.get("_method_signature")
        if signature is None:
            signature = self.__dict__["_method_signature"] = inspect.signature(
                getattr(self.container.service_cls, self.method_name))
        return signature

    def check_signature(self, args, kwargs) -> None:
        """As nameko checks a request's arguments (``IncorrectSignature``), against the signature read once
        (nameko's ``inspect.getcallargs`` reads it again for every request)."""
        try:
            self.method_signature.bind(None, *args, **kwargs)
        except TypeError as exc:
            raise IncorrectSignature(str(exc)) from None

    def call_arguments(self, args, kwargs) -> dict[str, Any]:
        """The request's arguments by name, defaults included, as ``inspect.getcallargs`` names them (without
        ``self``); ``TypeError`` when they do not fit."""
        bound = self.method_signature.bind(None, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        del arguments[next(iter(self.method_signature.parameters))]
        return arguments

    def unpack_message_headers(self, message):
        """The context data of a request, its caller written from the message's ``user_id`` (checked by
        RabbitMQ), never from a header (:mod:`.principals`). The headers as nameko unpacks them (``nameko.``
        taken off the names that have it), its prefix not formatted again for every header."""
        prefix = f"{self.header_prefix}."
        cut = len(prefix)
        data = {(key[cut:] if key.startswith(prefix) else key): value
                for key, value in (message.headers or {}).items()}
        return stamp_caller(data, message)

    def handle_result(self, message, worker_ctx, result, exc_info):
        keyed = getattr(worker_ctx, "keyed_request", None)
        if keyed is not None:  # the last unit of work commits now, with the reply
            result, exc_info = keyed.finish(result, exc_info)
        return super().handle_result(message, worker_ctx, result, exc_info)


rpc = Rpc.decorator
