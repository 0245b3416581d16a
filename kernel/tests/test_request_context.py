"""The request context's data sent on, its copy for an event's work, and the client address it keeps."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict

from upgestao_kernel import context as request_context
from upgestao_kernel.context import RequestContext


def test_the_data_sent_on_is_every_field_set_but_the_calling_service():
    full = RequestContext(request_id="r-1", actor_id="u-1", actor_role="attendant", source_ip="203.0.113.7",
                          correlation_id="c-1", causation_id="e-1", caller_service="gateway")
    partial = RequestContext(request_id="r-2", actor_id=None, actor_role="system", correlation_id="r-2")
    for ctx in (full, partial):  # what asdict made of it, in the same order
        expected = {k: v for k, v in asdict(ctx).items() if v is not None and k != "caller_service"}
        assert ctx.to_context_data() == expected
        assert list(ctx.to_context_data()) == list(expected)
    assert partial.to_context_data() == {"request_id": "r-2", "actor_role": "system", "correlation_id": "r-2"}


def test_work_caused_by_an_event_keeps_the_context_with_the_event_as_its_cause():
    ctx = RequestContext(request_id="r-1", actor_id="u-1", actor_role="attendant", source_ip="203.0.113.7",
                         correlation_id="c-1", causation_id="e-0", caller_service="gateway")
    caused = ctx.caused_by("e-1")
    assert caused == RequestContext(**{**asdict(ctx), "causation_id": "e-1"})
    assert ctx.causation_id == "e-0"


def test_the_client_address_is_kept_in_its_canonical_form_and_parsed_once(monkeypatch):
    parsed = []
    ip_address = ipaddress.ip_address
    monkeypatch.setattr(ipaddress, "ip_address", lambda text: parsed.append(text) or ip_address(text))
    proof = {"request_id": "r-1"}
    for _ in range(3):
        ctx = RequestContext.from_proof({**proof, "source_ip": "2001:DB8:0:0:0:0:0:77"}, None, None)
        assert ctx.source_ip == "2001:db8::77"
    assert parsed == ["2001:DB8:0:0:0:0:0:77"]
    assert RequestContext.from_proof({**proof, "source_ip": "198.51.100.250"}, None, None).source_ip == "198.51.100.250"
    for wrong in ("not an address", "203.0.113.999", "1" * 65, "", None):
        assert RequestContext.from_proof({**proof, "source_ip": wrong}, None, None).source_ip is None
    assert request_context._parsed_address.cache_info().maxsize == 4096  # bounded, whatever callers send
