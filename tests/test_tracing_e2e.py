"""Traces end to end (issue 18): one ``POST /v1/customers`` on the session platform is ONE trace, exported over
OTLP/HTTP to the in-process collector (``tests/otlp_collector.py``; the session platform exports to it, see
``tests/conftest.py``), holding the gateway's HTTP server span, its RPC client span, identity's RPC server span,
identity's relay's publish and privacy's consumption of the audit record, each the child of the one before;
no span exported since the request (by any process) holds the e-mail, the name or the phone sent. The trace's
span tree is printed (``pytest -s``) and written to ``bench/results/trace_post_customers.txt``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, Api, new_request_id
from otlp_collector import Span, span_tree

pytestmark = pytest.mark.timeout(120)

RESULT = Path(__file__).resolve().parent.parent / "bench" / "results" / "trace_post_customers.txt"


def _one(spans: list[Span], **where) -> Span | None:
    return next((span for span in spans if all(getattr(span, k) == v for k, v in where.items())), None)


def _complete(trace: list[Span]) -> dict[str, Span] | None:
    """The chain gateway → identity → identity-relay → privacy, each span the child of the one before, once all
    of it arrived."""
    by_id = {s.span_id: s for s in trace}
    server = _one(trace, service="gateway", kind="server", name="POST /v1/customers")
    client = _one(trace, service="gateway", kind="client", name="identity/create_customer")
    rpc = _one(trace, service="identity", kind="server", name="identity/create_customer")
    consumer = next((s for s in trace if s.service == "privacy" and s.kind == "consumer"
                     and s.name == "process privacy.audit-ingest"
                     and by_id.get(s.parent_id, None) is not None
                     and by_id[s.parent_id].service == "identity-relay"), None)
    if None in (server, client, rpc, consumer):
        return None
    return {"server": server, "client": client, "rpc": rpc, "publish": by_id[consumer.parent_id],
            "consume": consumer}


def _ancestors(span: Span, by_id: dict[str, Span]) -> list[Span]:
    chain = []
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        chain.append(span)
    return chain


def test_post_customers_is_one_trace_from_the_gateway_to_privacy(platform, otlp_collector):
    api = Api(platform.url)
    token = api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    tag = uuid.uuid4().hex[:8]
    email = f"rastro.{tag}@example.com.br"
    name = f"Cliente Rastreada {tag}"
    digits = f"9{int(tag, 16) % 10**8:08d}"
    phone = f"(11) {digits[:5]}-{digits[5:]}"
    request_id = new_request_id("trace post customers")
    since = otlp_collector.mark()  # what the platform exports from now on (earlier tests' spans not decoded)

    created = api.post("/v1/customers", token, json={"full_name": name, "email": email, "phone": phone},
                       headers={"X-Request-ID": request_id})
    assert created.status_code == 201, created.text
    customer_id = created.json()["id"]

    # the gateway's span says the request id: the trace is found from it (and the logs' lines say its trace id)
    server = otlp_collector.wait_for(lambda spans: next(
        (s for s in spans if s.service == "gateway" and s.kind == "server"
         and s.attributes.get("upgestao.request_id") == request_id), None), since=since)
    chain = otlp_collector.wait_for(lambda spans: _complete([s for s in spans if s.trace_id == server.trace_id]),
                                    since=since)
    trace = otlp_collector.trace(server.trace_id, since)
    by_id = {s.span_id: s for s in trace}

    # one trace, every span's parent in it but the root's, and the chain in order
    assert {s.trace_id for s in trace} == {server.trace_id}
    roots = [s for s in trace if not s.parent_id]
    assert roots == [chain["server"]], [f"{s.service} {s.name}" for s in roots]
    assert all(s.parent_id in by_id for s in trace if s.parent_id)
    assert chain["client"].parent_id == chain["server"].span_id
    assert chain["rpc"].parent_id == chain["client"].span_id
    assert chain["rpc"] in _ancestors(chain["publish"], by_id)  # the outbox row written under identity's span
    assert chain["publish"].kind == "producer" and chain["publish"].name == "publish audit"
    assert chain["consume"].parent_id == chain["publish"].span_id
    assert chain["server"].attributes["http.route"] == "/v1/customers"
    assert chain["server"].attributes["http.response.status_code"] == 201
    assert chain["rpc"].attributes["upgestao.request_id"] == request_id
    assert {s.service for s in trace} >= {"gateway", "identity", "identity-relay", "privacy"}

    # no personal data in any span exported since the request (the only ones that could hold what it sent):
    # names and attribute values, whatever the service (the customer's id may appear)
    needles = [email, email.split("@")[0], name, "Rastreada", phone, digits]
    for span in otlp_collector.spans(since):
        values = [span.name, *(str(v) for v in span.attributes.values())]
        for needle in needles:
            assert not any(needle.lower() in value.lower() for value in values), (span.service, span.name, needle)
    assert not any(customer_id in s.name for s in trace)  # ids are never in a span's name

    # the logs say the trace: the gateway's access line of this request carries its trace id
    def access_line() -> dict | None:
        for line in platform.log_path("gateway").read_text(errors="replace").splitlines():
            if request_id in line and '"http.request"' in line:
                return json.loads(line)
        return None

    logged = otlp_collector.wait_for(lambda _spans: access_line(), timeout_s=10, since=otlp_collector.mark())
    assert logged["trace_id"] == server.trace_id and logged["span_id"] == chain["server"].span_id

    # a path with an id and a query string: the span is named after the route's template, and says neither
    read_id = new_request_id("trace get customer")
    read = api.get(f"/v1/customers/{customer_id}", token, params={"q": email}, headers={"X-Request-ID": read_id})
    assert read.status_code == 200, read.text
    missing_id = new_request_id("trace unmatched")
    assert api.get(f"/v1/nothing/{customer_id}", token, headers={"X-Request-ID": missing_id}).status_code == 404
    for rid, expected in ((read_id, "GET /v1/customers/{customer_id}"), (missing_id, "GET")):
        span = otlp_collector.wait_for(lambda spans, rid=rid: next(
            (s for s in spans if s.service == "gateway" and s.kind == "server"
             and s.attributes.get("upgestao.request_id") == rid), None),
            since=since)
        assert span.name == expected
        values = [str(v) for v in span.attributes.values()]
        assert not any(customer_id in v or "q=" in v for v in values), span.attributes

    # the probes are not traced: /readyz leaves no span by the time a later request's has arrived
    probe_id, later_id = new_request_id("trace readyz"), new_request_id("trace ping")
    assert api.get("/readyz", headers={"X-Request-ID": probe_id}).status_code == 200
    assert api.get("/v1/ping", headers={"X-Request-ID": later_id}).status_code == 200
    spans = otlp_collector.wait_for(lambda spans: spans if any(
        s.attributes.get("upgestao.request_id") == later_id for s in spans) else None, since=since)
    assert not [s for s in spans if s.attributes.get("upgestao.request_id") == probe_id]

    tree = span_tree(trace)
    text = (f"POST /v1/customers (X-Request-ID {request_id}): trace {server.trace_id}, {len(trace)} spans\n"
            + "\n".join(tree) + "\n")
    print("\n" + text)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(text)


def test_a_service_calling_another_continues_the_trace(platform, otlp_collector):
    """nameko's RPC proxy in a service (messaging asking identity's directory for a team's members): its client
    span is the child of messaging's server span, identity's server span the child of it."""
    api = Api(platform.url)
    token = api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    me = api.get("/v1/me", token).json()["id"]
    request_id = new_request_id("trace post teams")
    since = otlp_collector.mark()
    created = api.post("/v1/teams", token, json={"name": f"Rastro {uuid.uuid4().hex[:6]}", "member_ids": [me]},
                       headers={"X-Request-ID": request_id})
    assert created.status_code == 201, created.text

    def chain(spans: list[Span]) -> list[Span] | None:
        server = next((s for s in spans if s.service == "gateway" and s.kind == "server"
                       and s.attributes.get("upgestao.request_id") == request_id), None)
        if server is None:
            return None
        trace = [s for s in spans if s.trace_id == server.trace_id]
        found = [_one(trace, service="gateway", kind="server", name="POST /v1/teams"),
                 _one(trace, service="gateway", kind="client", name="messaging/create_team"),
                 _one(trace, service="messaging", kind="server", name="messaging/create_team"),
                 _one(trace, service="messaging", kind="client", name="identity/directory"),
                 _one(trace, service="identity", kind="server", name="identity/directory")]
        return None if None in found else found

    spans = otlp_collector.wait_for(chain, since=since)
    for parent, child in zip(spans, spans[1:], strict=False):
        assert child.parent_id == parent.span_id, (parent.name, child.name)
    print("\n" + "\n".join(span_tree(otlp_collector.trace(spans[0].trace_id, since))))
