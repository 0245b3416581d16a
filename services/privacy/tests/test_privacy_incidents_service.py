"""The incident RPCs on the running service (real RabbitMQ and PostgreSQL): a DPO claimed in headers without
identity's signature is nobody, an attendant holds no privacy.incidents; every refusal is written (denied) in
privacy's own database before anything is read or resolved, and no incident is made."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from upgestao_kernel.errors import ServiceError

pytestmark = pytest.mark.infra


def test_only_a_proven_holder_of_privacy_incidents_may_call(privacy):
    body = {"nature_of_data": ["Names"], "categories": ["identification"], "affected": {"kind": "every_user"},
            "people_affected": "Users", "technical_measures": "Encryption", "risks": "Phishing",
            "measures_taken": "Rotated", "what_to_do": ["Nothing"], "dpo_contact": "dpo@example.com",
            "occurred_at": "2026-12-01T10:00:00+00:00", "detected_at": "2026-12-01T12:00:00+00:00"}
    incident_id = str(uuid.uuid4())
    calls = (("incident_record", (body,)), ("incidents_list", ()), ("incident_get", (incident_id,)),
             ("incident_confirm", (incident_id,)), ("platform_data_map", ()))
    for who in (privacy.FORGED_DPO, privacy.ATTENDANT, privacy.DPO):  # (the stand-in identity: dpo audit.read only)
        caller = privacy.caller(who)
        for method, args in calls:
            with pytest.raises(ServiceError) as refused:
                getattr(caller, method)(*args)
            assert refused.value.status in (401, 403), method
    with privacy.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM privacy_incidents")).scalar_one() == 0
        denied = conn.execute(sa.text(
            "SELECT count(*) FROM outbox WHERE exchange = 'audit' AND body::text LIKE '%\"denied\"%' "
            "AND (body::text LIKE '%\"incident\"%' OR body::text LIKE '%\"data_map\"%')")).scalar_one()
    assert denied >= 15
    assert privacy.caller(privacy.FORGED_DPO).data_map()["service"] == "privacy"  # the declaration is public
