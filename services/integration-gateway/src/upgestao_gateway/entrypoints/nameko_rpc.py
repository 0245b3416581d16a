"""nameko's RPC, as the routes' calls go out (:class:`~upgestao_gateway.adapters.rpc.RpcTransport`).

:class:`NamekoTransport` sends one call as nameko's method proxy does (the same message: ``{"args",
"kwargs"}`` on the RPC exchange under ``<service>.<method>``, mandatory and confirmed, so that a call no
service can receive is :class:`~nameko.exceptions.UnknownService` at once): the worker's context data
(request id, actor, source ip) travels as message headers, and a keyed call adds its idempotency key
(:data:`IDEMPOTENCY_HEADER`). The request message is transient and expires with the caller's deadline.
What nameko's proxy redoes for every call is done once per container (:class:`RpcPublisher`: the exchange,
and the broker connection's description that finds the pooled producer).
:class:`DeadlineReplyListener` is nameko's reply listener, able to forget a call whose caller gave up
(its reply, if it ever comes, is then dropped), reading its reply queue through a consumer of its own
(:class:`ReplyConsumer`): without acknowledgements, each reply handed to its waiter at once.
"""

from __future__ import annotations

import uuid
from typing import Any

from kombu import Connection
from kombu.exceptions import ChannelError
from kombu.pools import producers
from nameko.amqp.publish import Publisher, UndeliverableMessage
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    DEFAULT_SERIALIZER,
    DEFAULT_TRANSPORT_OPTIONS,
    LOGIN_METHOD_CONFIG_KEY,
    NON_PERSISTENT,
    SERIALIZER_CONFIG_KEY,
)
from nameko.exceptions import UnknownService
from nameko.messaging import HeaderEncoder, QueueConsumer
from nameko.rpc import ReplyListener, RpcReply, get_rpc_exchange
from upgestao_kernel.tracing import ClientCall, rpc_client_call

from ..adapters.rpc import RpcUnavailable

IDEMPOTENCY_HEADER = "nameko.idempotency_key"
NOT_LISTENING = "no such service is listening"


class RpcPublisher(Publisher):
    """nameko's publisher of RPC requests (mandatory, confirmed), for one container.

    nameko's method proxy builds a publisher per call, and its ``publish`` a kombu ``Connection`` per message
    only to find the pooled producer by it (parsing the broker URI each time); this one describes the
    connection once (the same description, so the same producer pool as nameko's) and publishes as
    nameko's ``Publisher.publish`` does.
    """

    mandatory = True

    def __init__(self, config: dict) -> None:
        amqp_uri = config["AMQP_URI"]
        ssl, login_method = config.get(AMQP_SSL_CONFIG_KEY), config.get(LOGIN_METHOD_CONFIG_KEY)
        super().__init__(amqp_uri, serializer=config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER), ssl=ssl,
                         login_method=login_method)
        self.exchange = get_rpc_exchange(config)
        self.connection = Connection(amqp_uri, transport_options={**DEFAULT_TRANSPORT_OPTIONS, "confirm_publish": True},
                                     ssl=ssl, login_method=login_method)

    def publish(self, payload: Any, *, headers: dict, **kwargs: Any) -> None:
        """Publish one request (``routing_key``, ``reply_to``, ``correlation_id``, ``expiration``, ...);
        :class:`UndeliverableMessage` when no queue takes it."""
        with producers[self.connection].acquire(block=True) as producer:
            try:
                producer.publish(payload, exchange=self.exchange, headers=headers, mandatory=True,
                                 priority=self.priority, compression=self.compression, retry=self.retry,
                                 retry_policy=self.retry_policy, serializer=self.serializer, **kwargs)
            except ChannelError as exc:
                if "NO_ROUTE" in str(exc):
                    raise UndeliverableMessage() from None
                raise


class ReplyConsumer(QueueConsumer):
    """nameko's queue consumer, for reply queues: consumed without acknowledgements, each reply handled in
    the consumer's thread.

    A reply is only ever handed to the green thread waiting for it (an event set, nothing that blocks), so
    it needs no thread of its own (nameko's consumer spawns one per message), and nothing is gained by
    acknowledging it: a reply delivered to a gateway that dies before handling it has no waiter left
    anywhere (the queue is this process's), and one sent while the connection is down waits in the queue
    until the consumer is back, as before. Without the acknowledgement, a call costs the gateway one write
    to the broker fewer (a tenth of its CPU per call). A shared extension of its own: its own connection,
    apart from the consumer of the service's RPC entrypoints, which acknowledges as ever.
    """

    def get_consumers(self, consumer_cls, channel):
        for provider in self._providers:
            self._consumers[provider] = consumer_cls(queues=[provider.queue], no_ack=True, accept=self.accept,
                                                     callbacks=[provider.handle_message])
        return self._consumers.values()

    def ack_message(self, message) -> None:  # consumed without acknowledgements
        pass

    def requeue_message(self, message) -> None:  # ditto: nothing to give back
        pass


class DeadlineReplyListener(ReplyListener):
    """nameko's reply listener (through a :class:`ReplyConsumer`), able to forget a call whose caller gave
    up."""

    queue_consumer = ReplyConsumer()

    def handle_message(self, body, message) -> None:
        reply_event = self._reply_events.pop(message.properties.get("correlation_id"), None)
        if reply_event is not None:
            reply_event.send(body)

    def forget(self, reply_event) -> None:
        for correlation_id, event in list(self._reply_events.items()):
            if event is reply_event:
                self._reply_events.pop(correlation_id, None)


class NamekoReply:
    """nameko's pending reply; a service no one serves is :class:`RpcUnavailable`. ``call``: the call's client
    span (tracing on), ended with the reply or when the caller forgets it."""

    def __init__(self, reply: RpcReply, service: str, method: str, call: ClientCall | None = None) -> None:
        self.reply = reply
        self.service = service
        self.method = method
        self.call = call

    def result(self) -> Any:
        if self.call is not None:
            return self._traced_result()
        try:
            return self.reply.result()
        except UnknownService:
            raise RpcUnavailable(self.service, self.method, NOT_LISTENING) from None

    def _traced_result(self) -> Any:
        try:
            result = self.reply.result()
        except UnknownService:
            self.call.end(RpcUnavailable(self.service, self.method, NOT_LISTENING))
            raise RpcUnavailable(self.service, self.method, NOT_LISTENING) from None
        except BaseException as exc:  # a ServiceError the service answered, the caller's deadline
            self.call.end(exc)
            raise
        self.call.end()
        return result


_HEADERS = HeaderEncoder()


class NamekoTransport:
    """The calls of one worker, through the container's publisher and reply listener."""

    def __init__(self, worker_ctx: Any, reply_listener: DeadlineReplyListener, publisher: RpcPublisher) -> None:
        self._worker_ctx = worker_ctx
        self._reply_listener = reply_listener
        self._publisher = publisher

    def send(self, service: str, method: str, args: tuple, kwargs: dict, *, expiration_s: float,
             idempotency_key: str | None) -> NamekoReply:
        headers = _HEADERS.get_message_headers(self._worker_ctx)
        if idempotency_key is not None:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        call = rpc_client_call(service, method, headers)  # tracing on: its span's traceparent in the headers
        correlation_id = str(uuid.uuid4())
        reply_event = self._reply_listener.get_reply_event(correlation_id)
        try:
            # Transient: a request outliving its deadline is useless, so it
            # need not wait for the broker's disk before being confirmed.
            self._publisher.publish({"args": args, "kwargs": kwargs}, headers=headers,
                                    routing_key=f"{service}.{method}", reply_to=self._reply_listener.routing_key,
                                    correlation_id=correlation_id, expiration=expiration_s,
                                    delivery_mode=NON_PERSISTENT)
        except UndeliverableMessage:
            self._reply_listener.forget(reply_event)
            unavailable = RpcUnavailable(service, method, NOT_LISTENING)
            if call is not None:
                call.end(unavailable)
            raise unavailable from None
        except BaseException as exc:
            self._reply_listener.forget(reply_event)
            if call is not None:
                call.end(exc)
            raise
        return NamekoReply(RpcReply(reply_event), service, method, call)

    def forget(self, reply: NamekoReply) -> None:
        self._reply_listener.forget(reply.reply.reply_event)
        if reply.call is not None:  # the caller gave up (its deadline): the span ends here
            reply.call.end(error_type="timeout")
