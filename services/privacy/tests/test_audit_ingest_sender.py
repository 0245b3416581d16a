"""The audit ingest stores a record only if its ``service`` is its sender's (issue 11, finding 1): the
sender is the message's AMQP ``user_id``, which RabbitMQ checks against the publishing connection's
user, so a service can no longer write records in another's name."""

from __future__ import annotations

import pytest
from upgestao_kernel.parking import list_parked
from upgestao_kernel.testing import wait_for
from upgestao_privacy.service_layer.ingest import NotTheSender, admit, admit_any

INGEST = "privacy.audit-ingest"


def test_a_record_is_admitted_from_its_own_service_s_user_only():
    admit({"service": "identity"}, "upgestao.identity")
    admit({"service": "gateway"}, "upgestao-test-1.gateway")
    with pytest.raises(NotTheSender, match="service"):
        admit({"service": "identity"}, "upgestao.gateway")
    for nobody in (None, "", "guest", "operator"):
        with pytest.raises(NotTheSender, match="user_id"):
            admit({"service": "identity"}, nobody)
    admit_any({"service": "identity"}, "guest")  # a platform sharing one user (never in production)


def test_a_record_claiming_another_service_is_parked_never_stored(privacy):
    forged = privacy.record(service="identity")
    genuine = privacy.record(service="gateway")
    privacy.publish([forged], as_service="gateway")  # under the gateway's routing key: the broker lets it in
    privacy.publish([genuine])  # the gateway's own record, from its user
    privacy.wait_count(1)
    assert [r["audit_id"] for r in privacy.stored()] == [genuine["audit_id"]]

    parked = wait_for(lambda: [m for m in list_parked(privacy.amqp_uri, INGEST)
                               if m.message_id == forged["audit_id"]])
    assert "NotTheSender" in parked[0].error
    assert forged["audit_id"] not in {r["audit_id"] for r in privacy.stored()}
