"""The metrics module (issue 18): addresses, the listener on a real green socket, sources, the outbox gauges."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from upgestao_kernel import metrics
from upgestao_kernel.config import ConfigError
from upgestao_kernel.db import create_engine
from upgestao_kernel.schema import kernel_metadata, outbox


def scrape(address: tuple[str, int]) -> dict:
    import http.client

    connection = http.client.HTTPConnection(address[0], address[1], timeout=5)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("text/plain; version=")
        text = response.read().decode()
    finally:
        connection.close()
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample(families: dict, name: str, **labels) -> float | None:
    for family in families.values():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


@pytest.mark.parametrize(("service", "relay", "variable"), [
    ("identity", False, "IDENTITY_METRICS_ADDRESS"), ("gateway", True, "GATEWAY_RELAY_METRICS_ADDRESS"),
    ("integrations", False, "INTEGRATIONS_METRICS_ADDRESS"),
])
def test_each_process_has_its_variable(service, relay, variable):
    assert metrics.metrics_variable(service, relay=relay) == variable


@pytest.mark.parametrize(("raw", "expected"), [
    (None, None), ("", None), (" ", None), ("0.0.0.0:9100", ("0.0.0.0", 9100)), ("[::]:9100", ("::", 9100)),
    ("metrics.local:65535", ("metrics.local", 65535)),
])
def test_an_address_is_host_port_or_nothing(raw, expected):
    environ = {} if raw is None else {"PRIVACY_METRICS_ADDRESS": raw}
    assert metrics.metrics_address("privacy", environ) == expected


@pytest.mark.parametrize("raw", ["9100", ":9100", "host:", "host:0", "host:65536", "host:http", "a b:9100",
                                 "http://host:9100", "user@host:9100"])
def test_a_bad_address_is_refused_naming_the_variable(raw):
    with pytest.raises(ConfigError) as caught:
        metrics.metrics_address("notifier", {"NOTIFIER_RELAY_METRICS_ADDRESS": raw}, relay=True)
    assert "NOTIFIER_RELAY_METRICS_ADDRESS" in str(caught.value)


def test_the_gateway_never_serves_metrics_on_its_public_port():
    environ = {"GATEWAY_HTTP_ADDRESS": "0.0.0.0:8000", "GATEWAY_METRICS_ADDRESS": "0.0.0.0:8000"}
    with pytest.raises(ConfigError, match="GATEWAY_METRICS_ADDRESS"):
        metrics.check_addresses("gateway", environ)
    metrics.check_addresses("gateway", {**environ, "GATEWAY_METRICS_ADDRESS": "0.0.0.0:9100"})


def test_declaring_a_series_twice_hands_back_the_same_one():
    first = metrics.counter("upgestao_test_declared_total", "A test counter.", ["outcome"])
    assert metrics.counter("upgestao_test_declared_total", "A test counter.", ["outcome"]) is first
    with pytest.raises(ValueError):
        metrics.gauge("upgestao_test_declared_total", "Not a gauge.")


def test_error_labels_are_bounded():
    names = metrics.BoundedNames(limit=2)
    assert [names("KeyError"), names("ValueError"), names("TypeError"), names("KeyError")] == \
        ["KeyError", "ValueError", "other", "KeyError"]
    assert names("not an identifier") == "other"


def test_the_listener_serves_the_registry_parsed_by_prometheus_client():
    metrics.observe_rpc("kernel-test", "ping", 0.003, None)
    metrics.observe_rpc("kernel-test", "ping", 0.2, KeyError("x"))
    removes = [
        metrics.add_source(lambda: [_gauge("upgestao_test_source", "a", 1)]),
        metrics.add_source(lambda: [_gauge("upgestao_test_source", "b", 2)]),
        metrics.add_source(_broken),
    ]
    server = metrics.MetricsServer(("127.0.0.1", 0), "TEST_METRICS_ADDRESS")
    address = server.start()
    try:
        families = scrape(address)
    finally:
        server.stop()
        for remove in removes:
            remove()
    assert sample(families, "upgestao_rpc_requests_total", service="kernel-test", method="ping", outcome="ok",
                  error="") >= 1
    assert sample(families, "upgestao_rpc_requests_total", service="kernel-test", method="ping",
                  outcome="error", error="KeyError") >= 1
    assert sample(families, "upgestao_rpc_request_duration_seconds_count", service="kernel-test",
                  method="ping") >= 2
    # two sources' families of one name merged; the broken one skipped, the scrape still served
    assert sample(families, "upgestao_test_source", which="a") == 1
    assert sample(families, "upgestao_test_source", which="b") == 2
    assert "process_cpu_seconds" in families  # prometheus_client's process collector
    assert "python_info" in families


def test_the_listener_answers_only_metrics():
    server = metrics.MetricsServer(("127.0.0.1", 0), "TEST_METRICS_ADDRESS")
    assert server.respond(b"GET /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 200 OK")
    assert server.respond(b"GET /other HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404")
    assert server.respond(b"POST /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405")
    assert server.respond(b"nonsense\r\n\r\n").startswith(b"HTTP/1.1 400")
    head = server.respond(b"HEAD /metrics HTTP/1.1\r\n\r\n")
    assert head.endswith(b"\r\n\r\n")


def test_a_taken_port_is_a_config_error_naming_the_variable():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        server = metrics.MetricsServer(taken.getsockname(), "MESSAGING_METRICS_ADDRESS")
        with pytest.raises(ConfigError, match="MESSAGING_METRICS_ADDRESS"):
            server.start()
    finally:
        taken.close()


def test_outbox_depth_and_the_age_of_the_oldest_unsent_row(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path}/outbox.sqlite3")
    kernel_metadata.create_all(engine, tables=[outbox])
    source = metrics.outbox_source("kernel-test", engine)
    assert _values(source()) == {"upgestao_outbox_depth": 0, "upgestao_outbox_oldest_unsent_age_seconds": 0.0}
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for i, (age_s, sent) in enumerate([(120, True), (40, False), (5, False)]):
            conn.execute(sa.insert(outbox).values(
                message_id=f"m{i}", exchange="x", routing_key="k", headers={}, body={},
                created_at=now - timedelta(seconds=age_s), sent_at=now if sent else None))
    values = _values(source())
    assert values["upgestao_outbox_depth"] == 2
    assert 39 <= values["upgestao_outbox_oldest_unsent_age_seconds"] <= 45
    engine.dispose()


def test_queue_depths_leave_unknown_queues_out():
    source = metrics.queue_depth_source(lambda: {"a.parked": 3, "upgestao.unrouted": 0, "missing.parked": None})
    (family,) = source()
    assert {s.labels["queue"]: s.value for s in family.samples} == {"a.parked": 3, "upgestao.unrouted": 0}


def test_broker_queue_depths_without_a_broker_say_nothing():
    started = time.monotonic()
    depths = metrics.BrokerQueueDepths("amqp://guest:guest@127.0.0.1:1/", ["a.parked"], timeout_s=1)
    assert depths() == {}
    assert time.monotonic() - started < 5


def _gauge(name: str, which: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, "A test source.", labels=["which"])
    family.add_metric([which], value)
    return family


def _broken():
    raise RuntimeError("a source that fails")


def _values(families) -> dict:
    return {family.name: family.samples[0].value for family in families}


def test_problem_slugs_are_bounded_by_their_own_pattern():
    slugs = metrics.BoundedNames(limit=5, pattern=metrics.BoundedNames.SLUG)
    assert slugs("not-found") == "not-found"
    assert slugs("Not Found") == "other"


@pytest.mark.parametrize("command", ["run", "relay", "check-config"])
@pytest.mark.parametrize(("variable", "address"), [("TALLY_METRICS_ADDRESS", "9100"),
                                                   ("TALLY_RELAY_METRICS_ADDRESS", "localhost:http")])
def test_a_bad_metrics_address_stops_the_process_before_it_starts(command, variable, address, monkeypatch, capsys,
                                                                  tmp_path):
    from upgestao_kernel.cli import CONFIG_ERROR_EXIT, ServiceDefinition, main

    tally = ServiceDefinition(name="tally", service_class="kernel_sample_services:TallyService",
                              migrations="upgestao_kernel:migrations")
    monkeypatch.setenv("UPGESTAO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(variable, address)
    assert main(tally, [command]) == CONFIG_ERROR_EXIT
    assert capsys.readouterr().err.startswith(f"upgestao-tally: configuration error: {variable}: ")


# -- UPGESTAO_METRICS=off: nothing recorded, no listener ----------------------------------------------------


def test_the_switch_is_on_by_default_and_only_on_or_off_is_accepted():
    assert metrics.metrics_enabled({}) is True
    assert metrics.metrics_enabled({"UPGESTAO_METRICS": " OFF "}) is False
    with pytest.raises(ConfigError) as refused:
        metrics.check_addresses("identity", {"UPGESTAO_METRICS": "maybe"})
    assert refused.value.variable == "UPGESTAO_METRICS"


def test_switched_off_a_series_records_nothing_and_no_address_is_served(monkeypatch):
    monkeypatch.setenv("UPGESTAO_METRICS", "off")
    series = metrics.counter("upgestao_switched_off_probe_total", "never registered", ["outcome"])
    series.labels(outcome="x").inc()
    metrics.histogram("upgestao_switched_off_probe_seconds", "never registered").observe(0.5)
    assert "upgestao_switched_off_probe" not in metrics.exposition(metrics.REGISTRY).decode()
    assert metrics.metrics_address("identity", {"UPGESTAO_METRICS": "off",
                                                "IDENTITY_METRICS_ADDRESS": "127.0.0.1:9100"}) is None
