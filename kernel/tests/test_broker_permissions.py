"""The permission table (unit tests: RabbitMQ matches these regexes as Python's ``re.search`` does for
the constructs used here; tests/security/test_broker_identities.py checks them on the real broker)."""

from __future__ import annotations

import json
import re
import uuid

import amqp
import pytest
from upgestao_kernel.broker_permissions import (
    AUDIT_STREAM,
    CONSUMES,
    SHARED_USER_ENV,
    UNROUTED_POLICY,
    main,
    permission_table,
    permissions_for,
    shares_one_user,
)
from upgestao_kernel.topology import UNROUTED
from upgestao_kernel.user_id_stamp import connection_user, stamp

SERVICES = ("gateway", "identity", "messaging", "notifier", "privacy")
REPLY = f"rpc.reply-{{}}-{uuid.uuid4()}"


def allows(regex: str, name: str) -> bool:
    return re.search(regex, name) is not None


def topic(service: str, exchange: str):
    return next(t for t in permissions_for(service).topics if t.exchange == exchange)


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_owns_its_rpc_queue_reply_queues_consumer_queues_and_events_exchange(service):
    grants = permissions_for(service, "/")
    assert grants.user == f"upgestao.{service}"
    assert not allows(grants.read, REPLY.format("standalone_rpc_proxy"))  # a proxy's replies are named per service
    own = [f"rpc-{service}", REPLY.format(service), f"{service}.on_thing",
           f"{service}.on_thing.retry.1", f"{service}.on_thing.parked", f"{service}.events"]
    for name in own:
        assert allows(grants.configure, name) and allows(grants.write, name) and allows(grants.read, name), name


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_reads_or_configures_another_ones_queues_nor_the_unrouted_catch_all(service):
    grants = permissions_for(service, "/")
    for other in SERVICES:
        if other == service:
            continue
        for name in (f"rpc-{other}", f"{other}.on_thing", f"{other}.on_thing.parked", REPLY.format(other)):
            assert not allows(grants.read, name), name
            assert not allows(grants.configure, name), name
            assert not allows(grants.write, name), name
        if other not in CONSUMES.get(service, ()):  # the gateway's stream, the notifier's queues bind to them
            assert not allows(grants.read, f"{other}.events")
        assert not allows(grants.write, f"{other}.events")  # nobody publishes another's events
    assert not allows(grants.read, UNROUTED)  # binding a queue to it would copy every unrouted message
    assert not allows(grants.configure, UNROUTED)  # deleting it
    assert allows(grants.write, UNROUTED)  # declaring an exchange with it as alternate exchange needs write


def test_the_gateway_cannot_consume_identity_or_the_audit_ingest_nor_publish_identity_events():
    gateway = permissions_for("gateway", "/")
    for queue in ("rpc-identity", "rpc-privacy", "privacy.audit-ingest", "privacy.audit-ingest.parked", AUDIT_STREAM):
        assert not allows(gateway.read, queue), queue
    assert not allows(gateway.write, "identity.events")
    assert allows(gateway.read, "identity.events")  # its access-events stream binds from it
    assert allows(gateway.read, "gateway.access-events") and allows(gateway.configure, "gateway.access-events")


def test_only_privacy_owns_the_audit_ingest_and_the_audit_stream():
    privacy = permissions_for("privacy", "/")
    for queue in ("privacy.audit-ingest", "privacy.audit-ingest.parked", AUDIT_STREAM):
        assert allows(privacy.read, queue) and allows(privacy.configure, queue)
    assert allows(topic("privacy", "audit").read, "audit.#")
    for service in set(SERVICES) - {"privacy"}:
        assert not allows(permissions_for(service).read, AUDIT_STREAM)
        assert not allows(topic(service, "audit").read, "audit.#")  # binds no queue to the audit records


@pytest.mark.parametrize("service", SERVICES)
def test_audit_records_are_published_under_the_service_own_routing_key_only(service):
    write = topic(service, "audit").write
    assert allows(write, f"audit.{service}.read")
    for other in set(SERVICES) - {service}:
        assert not allows(write, f"audit.{other}.read")
    assert not allows(write, f"audit.{service}x.read")
    assert not allows(write, f"audit.{service}.read.more")


@pytest.mark.parametrize("service", SERVICES)
def test_on_nameko_rpc_a_service_binds_only_its_own_methods_and_reply_keys(service):
    read = topic(service, "nameko-rpc").read
    assert allows(read, f"{service}.*")
    assert allows(read, str(uuid.uuid4()))
    for other in set(SERVICES) - {service}:
        assert not allows(read, f"{other}.*")
        assert not allows(read, f"{other}.public_keys")
    assert not allows(read, "#") and not allows(read, "*.*") and not allows(read, f"{service}.#")


def test_users_are_named_per_vhost_and_the_table_has_every_service():
    table = permission_table(SERVICES, "upgestao-test-1")
    assert {grants.user for grants in table.values()} == {f"upgestao-test-1.{s}" for s in SERVICES}
    assert permissions_for("ledger", "v", consumes=("accounts",)).read.count("accounts\\.events") == 1


def test_the_unrouted_policy_bounds_the_queue_by_age_and_length_dropping_the_oldest():
    assert re.search(UNROUTED_POLICY["pattern"], UNROUTED)
    assert not re.search(UNROUTED_POLICY["pattern"], UNROUTED + ".x")
    definition = UNROUTED_POLICY["definition"]
    assert definition["message-ttl"] > 0 and definition["max-length"] > 0
    assert definition["overflow"] == "drop-head" and UNROUTED_POLICY["apply-to"] == "queues"


def test_the_cli_prints_the_table_and_the_policy(capsys):
    assert main(["table", "/", "gateway", "privacy"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [user["user"] for user in printed["users"]] == ["upgestao.gateway", "upgestao.privacy"]
    assert printed["unrouted_policy"]["definition"] == UNROUTED_POLICY["definition"]
    assert main([], environ={}) == 2


def test_one_shared_user_only_when_said_and_never_in_production():
    assert shares_one_user("local", {SHARED_USER_ENV: "1"})
    assert not shares_one_user("production", {SHARED_USER_ENV: "1"})
    assert not shares_one_user("local", {})


class _Connection:
    def __init__(self, *authentication) -> None:
        self.authentication = authentication


class _Channel:
    def __init__(self, connection) -> None:
        self.connection = connection


def test_a_publish_is_stamped_with_its_connection_user_unless_it_names_one():
    channel = _Channel(_Connection(amqp.sasl.GSSAPI("x", fail_soft=True), amqp.sasl.AMQPLAIN("svc.user", "pw")))
    message = amqp.Message(b"{}")
    stamp(channel, message)
    assert message.properties["user_id"] == "svc.user"
    forged = amqp.Message(b"{}", user_id="someone.else")
    stamp(channel, forged)
    assert forged.properties["user_id"] == "someone.else"  # the broker refuses it: not ours to hide
    assert connection_user(_Connection(amqp.sasl.EXTERNAL())) is None


def test_every_amqp_publish_goes_through_the_stamp():
    assert getattr(amqp.Channel._basic_publish, "_upgestao_stamps_user_id", False)
    assert amqp.Channel.basic_publish is amqp.Channel._basic_publish


def test_only_the_services_that_must_publish_straight_to_a_queue_write_on_the_default_exchange():
    for service in SERVICES:
        # the gateway (its stream's sentinel), privacy (parking, the audit stream), every consumer of events (a
        # consumer's retries and parking go straight to its own delay and parking queues)
        expected = service in ("gateway", "privacy", "notifier", "identity", "messaging")
        assert allows(permissions_for(service).write, "amq.default") == expected, service
    assert allows(permissions_for("messaging", consumes=("identity",)).write, "amq.default")  # retries, parking


def test_a_standalone_proxy_names_its_reply_queue_after_its_broker_user_s_service():
    from nameko.standalone.rpc import ClusterRpcProxy
    from upgestao_kernel.nameko_ext.standalone import proxy_service_name

    as_gateway = {"AMQP_URI": "amqp://upgestao-test-1.gateway:pw@127.0.0.1:5672/upgestao-test-1"}
    assert proxy_service_name(as_gateway) == "gateway"
    assert proxy_service_name({"AMQP_URI": "amqp://guest:guest@127.0.0.1:5672/"}) is None
    assert ClusterRpcProxy(as_gateway)._reply_listener.container.service_name == "gateway"
    assert ClusterRpcProxy({"AMQP_URI": "amqp://guest:guest@h/"})._reply_listener.container.service_name == \
        "standalone_rpc_proxy"


def test_only_the_audit_log_may_declare_or_delete_the_audit_exchange():
    for service in SERVICES:
        assert allows(permissions_for(service).configure, "audit") == (service == "privacy"), service
        assert allows(permissions_for(service).write, "audit")  # every service publishes its records
