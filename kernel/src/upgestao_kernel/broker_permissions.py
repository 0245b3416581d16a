"""What each service's broker user may do: RabbitMQ permissions as data.

A service (and its outbox relay, which publishes on its behalf under the same user) connects as
:func:`~upgestao_kernel.broker_identity.broker_user`. Its *resource* permissions are three regular
expressions over exchange and queue names (RabbitMQ 3.10 semantics, checked against the real broker
by ``tests/security/test_broker_identities.py``):

* **configure**: declare (not passively) or delete; own queues and exchanges only, plus the shared
  exchanges a service must declare because nameko and kombu declare before use (``nameko-rpc``, the
  events exchanges it binds from; ``audit`` for privacy only: the provisioning declares it, and a
  publisher declares it only where it is missing);
* **write**: publish to an exchange; bind a queue (write on the queue); declare an exchange whose
  alternate exchange is ``upgestao.unrouted`` (write on the alternate exchange);
* **read**: consume or purge a queue; bind from an exchange; declare an exchange with an alternate
  exchange (read on the exchange declared).

Topic permissions narrow the routing keys on the shared topic exchanges: on ``audit`` a service
publishes only ``audit.<itself>.<action>`` and binds nothing (privacy binds ``audit.#``, its
ingest); on ``nameko-rpc`` it binds only its own ``<service>.*`` and reply keys (UUIDs), so it can
never bind ``identity.public_keys`` and answer another service's calls as a competing consumer (it
may publish any key there: replies go wherever the caller's ``reply_to`` says).

What nobody but the provisioning (an administrator) gets: read on ``upgestao.unrouted`` (binding a
queue of one's own to it would copy every unrouted message, reset tokens included) and configure on
it (deleting the queue). The provisioning declares it (:func:`~upgestao_kernel.topology.declare_unrouted`)
and bounds it with :data:`UNROUTED_POLICY`.

Residual, documented in ``docs/architecture.md``: configure on ``nameko-rpc`` (and on the events
exchanges a service consumes) lets a service delete it, dropping its bindings until the services
reconnect (a denial of service, never a read or a forgery); write on the
default exchange (:data:`DIRECT_PUBLISHERS`: to park and retry, for the gateway's stream sentinel and
privacy's audit stream) lets that service put a message straight into any queue by name: a consumer
must therefore judge a message by its ``user_id`` (the audit ingest does; an RPC request so delivered
names no method and is refused).

``python -m upgestao_kernel.broker_permissions table <vhost> [service ...]`` prints the table as JSON for
the stdlib-only platform script (``scripts/upgestao_platform.py``), which provisions it (its other
commands declare the unrouted catch-all and probe a vhost over AMQP: :func:`main`).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from .broker_identity import broker_user
from .topology import AUDIT_EXCHANGE, UNROUTED, events_exchange_name

RPC_EXCHANGE = "nameko-rpc"
DEFAULT_EXCHANGE = "amq.default"  # the default exchange "" as RabbitMQ names it for permission checks
AUDIT_STREAM = "audit.log"  # privacy's audit stream (PRIVACY_AUDIT_STREAM_QUEUE's default)
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
NOTHING = "^$"  # the empty name only: no exchange or queue of the platform, no routing key it uses

# Set by the platform when it could not create the users (no management API, no rabbitmqctl) outside
# production: every process shares the one AMQP_URI, so ``user_id`` cannot tell services apart.
SHARED_USER_ENV = "UPGESTAO_BROKER_SHARED_USER"

# Which other service's events exchange a service binds a queue to (its stream or consumers).
CONSUMES: Mapping[str, tuple[str, ...]] = {
    # identity's access events (revocations); messaging's events pushed live on /v1/stream
    "gateway": ("identity", "messaging"),
    # mail on identity's notices and privacy's (codes, answers, corrections, breach notices, policy versions),
    # and integrations' (an endpoint disabled: its admins told)
    "notifier": ("identity", "integrations", "privacy"),
    # privacy's erasure requests (each holder of personal data erases, then confirms)
    "identity": ("privacy",),
    "messaging": ("privacy",),
    # the holders' erasure confirmations, identity's profile changes (a correction applied); the
    # integrations registered and changed (third parties in sharing reports) and integrations' confirmations
    "privacy": ("identity", "integrations", "messaging"),
    # webhooks from conversations and messages, customers' registrations and changes, erasure requests
    # (it calls identity's and messaging's share RPCs, which answer its broker user only)
    "integrations": ("identity", "messaging", "privacy"),
}
# Queues a service owns beyond ``<service>.*``, ``rpc-<service>`` and its reply queues.
EXTRA_QUEUES: Mapping[str, tuple[str, ...]] = {"privacy": (AUDIT_STREAM,)}
# Who reads every audit record (binds ``audit.#``): the audit log's ingest.
AUDIT_READER = "privacy"
# Who publishes straight into a queue through the default exchange (write on it reaches *any* queue by
# name): the gateway (its access stream's sentinel) and privacy (parking ingest failures, feeding the
# audit stream); and any service that consumes events (its reliable handlers' retries and parking).
DIRECT_PUBLISHERS = frozenset({"gateway", "privacy"})

# upgestao.unrouted's bounds (a policy: an existing queue's arguments cannot change). A message lands
# there only when no queue is bound for it (an event nobody consumes yet): kept a day for an operator
# to look at, at most 10,000 of them, the oldest dropped first; never a disk alarm blocking publishers.
UNROUTED_POLICY_NAME = "upgestao-unrouted-bounded"
UNROUTED_POLICY: Mapping[str, object] = {
    "pattern": f"^{re.escape(UNROUTED)}$",
    "apply-to": "queues",
    "priority": 10,
    "definition": {"message-ttl": 86_400_000, "max-length": 10_000, "overflow": "drop-head"},
}


@dataclass(frozen=True)
class TopicPermission:
    exchange: str
    write: str
    read: str


@dataclass(frozen=True)
class BrokerPermissions:
    """One service's user on one vhost: its resource permissions and topic permissions."""

    service: str
    user: str
    configure: str
    write: str
    read: str
    topics: tuple[TopicPermission, ...] = field(default=())

    def as_dict(self) -> dict:
        return asdict(self)


def _alternatives(names: Iterable[str]) -> str:
    return "|".join(names)


def _exact(names: Iterable[str]) -> str:
    return "^(" + _alternatives(re.escape(name) for name in names) + ")$"


def permissions_for(service: str, vhost: str = "/", *, consumes: Sequence[str] | None = None) -> BrokerPermissions:
    """The permissions of ``service``'s user on ``vhost``; ``consumes``: the services whose events it
    binds from (default: :data:`CONSUMES`)."""
    user = broker_user(service, vhost)  # validates the service name
    own = re.escape(service)
    sources = tuple(consumes if consumes is not None else CONSUMES.get(service, ()))
    source_exchanges = [events_exchange_name(source) for source in sources]
    own_exchange = events_exchange_name(service)
    queues = [
        rf"rpc-{own}",  # its RPC queue
        rf"rpc\.reply-{own}-{UUID}",  # its reply queues (its standalone proxies' too: nameko_ext.standalone)
        rf"{own}\..+",  # its consumer queues, their .retry.N and .parked, its streams, its events exchange
        *(re.escape(name) for name in EXTRA_QUEUES.get(service, ())),
    ]
    # declared before use by nameko (nameko-rpc) and by a queue's binding (kombu declares the source):
    # the sources of its consumers, and audit for the audit log's ingest; the provisioning declares audit
    shared_declared = [RPC_EXCHANGE, *source_exchanges, *((AUDIT_EXCHANGE,) if service == AUDIT_READER else ())]
    configure = "^(" + _alternatives([*(re.escape(n) for n in shared_declared), *queues]) + ")$"
    direct = (DEFAULT_EXCHANGE,) if service in DIRECT_PUBLISHERS or sources else ()
    write = "^(" + _alternatives([*(re.escape(n) for n in (RPC_EXCHANGE, AUDIT_EXCHANGE, UNROUTED, *direct)),
                                  *queues]) + ")$"
    read = "^(" + _alternatives([*(re.escape(n) for n in (RPC_EXCHANGE, AUDIT_EXCHANGE, *source_exchanges)),
                                 *queues]) + ")$"
    topics = (
        # audit: publish its own records only; bind nothing but the audit log's ingest
        TopicPermission(AUDIT_EXCHANGE, write=rf"^audit\.{own}\.[^.]+$",
                        read=r"^audit\.#$" if service == AUDIT_READER else NOTHING),
        # nameko-rpc: bind only its own methods and its replies. Publishing is not narrowed: a reply goes to
        # whatever reply_to its caller named, and a reply the broker refused would kill the answering
        # service's container (nameko); who may call what is the callee's check (RequestContext.caller_service)
        TopicPermission(RPC_EXCHANGE, write=".*", read=rf"^({own}\.\*|{UUID})$"),
        # its own events: any event type of its own; binding from it is its consumers' business
        TopicPermission(own_exchange, write=rf"^{own}\.[a-z0-9_.]+$", read=".*"),
    )
    return BrokerPermissions(service=service, user=user, configure=configure, write=write, read=read, topics=topics)


def shares_one_user(env: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the processes share one broker user (:data:`SHARED_USER_ENV`); never in production."""
    return environ.get(SHARED_USER_ENV) == "1" and env != "production"


def permission_table(services: Iterable[str], vhost: str = "/") -> dict[str, BrokerPermissions]:
    return {service: permissions_for(service, vhost) for service in services}


USAGE = """usage: python -m upgestao_kernel.broker_permissions COMMAND
  table <vhost> [service ...]  the users' permissions and the unrouted policy, JSON (default: every service)
  declare-shared               declare upgestao.unrouted (exchange, queue) and audit on $AMQP_URI (an admin's)
  probe                        connect to $AMQP_URI: exit 0 if its vhost exists and the user may use it"""


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    """The broker-side steps of the stdlib-only platform script, run with the platform's Python.
    The URI comes from the environment (``AMQP_URI``), never from the command line (``ps`` shows it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else ""
    if command == "table" and len(args) >= 2:
        vhost, services = args[1], args[2:]
        if not services:
            from .service_registry import service_definitions

            services = sorted(service_definitions())
        print(json.dumps({
            "users": [p.as_dict() for p in permission_table(services, vhost).values()],
            "unrouted_policy": {"name": UNROUTED_POLICY_NAME, **UNROUTED_POLICY},
        }))
        return 0
    if command in ("declare-shared", "probe") and environ.get("AMQP_URI"):
        from kombu import Connection

        from .topology import declare_shared

        try:
            with Connection(environ["AMQP_URI"], connect_timeout=5) as conn:
                conn.connect()
                if command == "declare-shared":
                    declare_shared(conn.default_channel)
        except Exception as exc:  # noqa: BLE001 - the platform script shows why, in one line
            print(f"{type(exc).__name__}: {exc}"[:300], file=sys.stderr)
            return 1
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover - the platform script's entry
    raise SystemExit(main())
