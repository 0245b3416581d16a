"""The notification routes on a running gateway: a fake notifier (RPC ``deliveries``, ``campaign``)
stands in for the real one on the real broker, the gateway's own database audits refusals, and a
fixed table of tokens says who holds ``notifications.read``.

What is proven: 401 without a token, 403 (audited) without the permission and the notifier never
asked, the answers shaped by the documented schemas (nothing else reaches the client), 422 naming a
bad parameter before the notifier is asked, and the notifier's own refusals (403, 404, 422) answered
as the problems it names."""

from __future__ import annotations

import uuid

import pytest
from upgestao_gateway.domain.principal import Principal
from upgestao_gateway.entrypoints.notifications.schemas import STATUSES
from upgestao_kernel.errors import ServiceError, invalid_field, not_found
from upgestao_kernel.nameko_ext import rpc

CAMPAIGN = "9b7e4c1a-2f3d-4e5a-8b6c-7d8e9f0a1b2c"
FORBIDDEN_CAMPAIGN = "0d0d0d0d-0000-4000-8000-000000000403"
EVENT = "3f1c0a9e-1b7a-4c55-9a55-1c1f4a2e9d10"
RECIPIENT = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"


def delivery(**over) -> dict:
    return {"id": str(uuid.uuid4()), "event_id": EVENT, "event_type": "identity.password_reset_requested.v1",
            "kind": "password_reset", "campaign_id": None, "recipient_id": RECIPIENT, "status": "sent",
            "attempts": 1, "last_code": 250, "last_error": None, "confirmed": True,
            "message_id": f"<{EVENT}.{RECIPIENT}@upgestao>",
            "created_at": "2026-12-02T04:00:00+00:00", "updated_at": "2026-12-02T04:00:01+00:00",
            "sent_at": "2026-12-02T04:00:01+00:00", "next_attempt_at": None, **over}


class NotifierCalls:
    """What the fake notifier was asked (shared with the tests)."""

    calls: list[tuple] = []


class FakeNotifier:
    name = "notifier"

    @rpc
    def deliveries(self, filters: dict, limit: int, cursor: str | None) -> dict:
        NotifierCalls.calls.append(("deliveries", filters, limit, cursor))
        if cursor == "refuse":  # as the notifier refuses a cursor it did not issue
            raise invalid_field("cursor", "is not a cursor this service issued")
        # a record as the store holds it: whatever else it has must not reach the client
        item = delivery(email="maria.silva@example.com.br", subject="Redefina sua senha", body="token=abc")
        return {"items": [item], "next_cursor": "next-page"}

    @rpc
    def campaign(self, campaign_id: str) -> dict:
        NotifierCalls.calls.append(("campaign", campaign_id))
        if campaign_id == FORBIDDEN_CAMPAIGN:  # the notifier's own check of the permission (defence in depth)
            raise ServiceError("forbidden", "This needs the permission notifications.read.", 403,
                               {"permission": "notifications.read"})
        if campaign_id != CAMPAIGN:
            raise not_found("campaign")
        counts = dict.fromkeys(STATUSES, 0) | {"sent": 2, "soft_failed": 1}
        return {"campaign_id": campaign_id, "total": 3, "counts": counts,
                "first_created_at": "2026-12-02T04:00:00+00:00", "last_updated_at": "2026-12-02T04:05:00+00:00",
                "recipients": ["maria.silva@example.com.br"]}


# a fixed table of tokens: the dpo holds ``notifications.read``, the attendant does not
PRINCIPALS = {
    "dpo-token": Principal(actor_id="user-dpo", role="dpo", session_id="sess-dpo",
                           permissions=frozenset({"notifications.read", "audit.read"})),
    "attendant-token": Principal(actor_id="user-attendant", role="attendant", session_id="sess-att",
                                 permissions=frozenset({"profile.read"})),
}


@pytest.fixture(scope="module")
def gateway(routes_gateway):
    return routes_gateway(FakeNotifier, PRINCIPALS)


@pytest.fixture(autouse=True)
def calls():
    NotifierCalls.calls.clear()
    yield NotifierCalls.calls


PATHS = ["/v1/notifications/deliveries", f"/v1/notifications/campaigns/{CAMPAIGN}"]


@pytest.mark.parametrize("path", PATHS)
def test_without_a_token_it_is_401(gateway, calls, path):
    gateway.problem(gateway.get(path), 401, "unauthenticated")
    gateway.problem(gateway.get(path, "no-such-token"), 401, "unauthenticated")
    assert calls == []


@pytest.mark.parametrize("path", PATHS)
def test_without_notifications_read_it_is_403_audited_and_the_notifier_is_not_asked(gateway, calls, path):
    request_id = f"notif-denied-{uuid.uuid4().hex[:12]}"
    response = gateway.get(path, "attendant-token", headers={"X-Request-ID": request_id})
    assert gateway.problem(response, 403, "forbidden")["permission"] == "notifications.read"
    assert calls == []
    (record,) = gateway.denials(request_id)
    assert (record["service"], record["actor_id"], record["outcome"]) == ("gateway", "user-attendant", "denied")


def test_the_deliveries_are_the_notifiers_answer_in_the_documented_shape(gateway, calls):
    response = gateway.get("/v1/notifications/deliveries", "dpo-token",
                           params={"event_id": EVENT.upper(), "status": "sent", "limit": "10", "cursor": "c-1"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] == "next-page"
    (item,) = body["items"]
    assert set(item) == set(delivery())  # never the address, the subject or the body the store may hold
    assert (item["status"], item["kind"], item["attempts"]) == ("sent", "password_reset", 1)
    assert calls == [("deliveries", {"event_id": EVENT, "status": "sent"}, 10, "c-1")]


def test_without_filters_the_newest_fifty_are_asked_for(gateway, calls):
    response = gateway.get("/v1/notifications/deliveries", "dpo-token")
    assert response.status_code == 200, response.text
    assert calls == [("deliveries", {}, 50, None)]


@pytest.mark.parametrize("params, field", [
    ({"event_id": "not-a-uuid"}, "event_id"),
    ({"campaign_id": "Maria Silva"}, "campaign_id"),
    ({"recipient_id": "maria.silva@example.com.br"}, "recipient_id"),
    ({"status": "delivered"}, "status"),
    ({"limit": "0"}, "limit"),
    ({"limit": "201"}, "limit"),
])
def test_a_bad_parameter_is_a_422_naming_it_and_the_notifier_is_not_asked(gateway, calls, params, field):
    response = gateway.get("/v1/notifications/deliveries", "dpo-token", params=params)
    body = gateway.problem(response, 422, "validation-error")
    assert [error["field"] for error in body["errors"]] == [field]
    assert calls == []


def test_a_refused_id_is_not_echoed_back(gateway):
    response = gateway.get("/v1/notifications/deliveries", "dpo-token",
                           params={"recipient_id": "maria.silva@example.com.br"})
    gateway.problem(response, 422, "validation-error")
    assert "maria" not in response.text


def test_a_refusal_of_the_notifier_is_answered_as_its_problem(gateway):
    body = gateway.problem(gateway.get("/v1/notifications/deliveries", "dpo-token", params={"cursor": "refuse"}),
                          422, "validation-error")
    assert body["errors"] == [{"field": "cursor", "message": "is not a cursor this service issued"}]


def test_a_campaign_counts_every_state(gateway, calls):
    response = gateway.get(f"/v1/notifications/campaigns/{CAMPAIGN.upper()}", "dpo-token")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "campaign_id": CAMPAIGN, "total": 3,
        "counts": {"queued": 0, "sending": 0, "sent": 2, "soft_failed": 1, "hard_failed": 0, "suppressed": 0},
        "first_created_at": "2026-12-02T04:00:00+00:00", "last_updated_at": "2026-12-02T04:05:00+00:00",
    }
    assert calls == [("campaign", CAMPAIGN)]


def test_an_unknown_campaign_is_404(gateway):
    body = gateway.problem(gateway.get(f"/v1/notifications/campaigns/{uuid.uuid4()}", "dpo-token"), 404, "not-found")
    assert body["detail"] == "No such campaign."


def test_the_notifiers_own_permission_check_is_a_403(gateway):
    body = gateway.problem(gateway.get(f"/v1/notifications/campaigns/{FORBIDDEN_CAMPAIGN}", "dpo-token"),
                          403, "forbidden")
    assert body["permission"] == "notifications.read"


def test_a_campaign_id_that_is_not_a_uuid_is_422_before_anything(gateway, calls):
    body = gateway.problem(gateway.get("/v1/notifications/campaigns/breach-2026", "dpo-token"), 422,
                          "validation-error")
    assert body["errors"] == [{"field": "campaign_id", "message": "must be a UUID"}]
    assert calls == []
