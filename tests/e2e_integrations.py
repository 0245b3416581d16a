"""The integrations' and API keys' rows of the shared end-to-end tables (issue 15): every route needs
``integrations.manage`` (the admin's alone); an id nobody was given is a 404 for the admin."""

from __future__ import annotations

import uuid

# (method, path template) -> statuses for (attendant, supervisor, dpo, admin)
INTEGRATION_PERMISSIONS: dict[tuple[str, str], tuple[int, int, int, int]] = {
    ("POST", "/v1/integrations"): (403, 403, 403, 201),
    ("GET", "/v1/integrations"): (403, 403, 403, 200),
    ("GET", "/v1/integrations/{integration}"): (403, 403, 403, 404),
    ("PATCH", "/v1/integrations/{integration}"): (403, 403, 403, 404),
    ("POST", "/v1/integrations/{integration}/secret/rotate"): (403, 403, 403, 404),
    ("GET", "/v1/integrations/{integration}/messages"): (403, 403, 403, 404),
    ("GET", "/v1/integrations/{integration}/messages/{message}"): (403, 403, 403, 404),
    ("POST", "/v1/integrations/{integration}/messages/{message}/resend"): (403, 403, 403, 404),
    ("POST", "/v1/integrations/{integration}/recover"): (403, 403, 403, 404),
    ("GET", "/v1/integrations/{integration}/recoveries/{recovery}"): (403, 403, 403, 404),
    ("POST", "/v1/api-keys"): (403, 403, 403, 201),
    ("GET", "/v1/api-keys"): (403, 403, 403, 200),
    ("GET", "/v1/api-keys/{key}"): (403, 403, 403, 404),
    ("DELETE", "/v1/api-keys/{key}"): (403, 403, 403, 404),
}


def integration_path(template: str) -> str:
    """``template`` with ids of the right shape that nobody was given."""
    return (template.replace("{integration}", "int_" + uuid.uuid4().hex[:26])
            .replace("{message}", "msg_" + uuid.uuid4().hex).replace("{recovery}", "rec_" + uuid.uuid4().hex)
            .replace("{key}", str(uuid.uuid4())))


def integration_request_json(method: str, template: str) -> dict | None:
    """A valid body for the routes that take one (None for the others)."""
    if (method, template) == ("POST", "/v1/integrations"):
        # a host that resolves nowhere, no personal field, one rare event: it shares nothing with anyone and
        # leaves no share in the audit log of the tests that follow
        return {"name": f"Tabela {uuid.uuid4().hex[:6]}", "url": "https://hooks.invalid/upgestao",
                "events": ["message.deleted"], "fields": [],
                "privacy_policy_url": "https://tabela.example.com/privacy"}
    if (method, template) == ("PATCH", "/v1/integrations/{integration}"):
        return {"name": "Renomeada"}
    if (method, template) == ("POST", "/v1/integrations/{integration}/recover"):
        return {"since": "2026-01-01T00:00:00Z"}
    if (method, template) == ("POST", "/v1/api-keys"):
        return {"name": "Ferramenta da tabela", "scopes": ["customers.read"]}
    return None


# Operations whose service applies rules a JSON schema cannot state (tests/test_api_fuzz_e2e.py): positive data may
# get 422 -- an endpoint URL the SSRF guard or the production rules refuse, an empty change, a cursor the API never
# gave, a recovery from the future, a scope the creator's role does not hold, an expiry past a year.
MEANING_CHECKED = {
    "POST /v1/integrations", "PATCH /v1/integrations/{integration}", "GET /v1/integrations",
    "GET /v1/integrations/{integration}/messages", "POST /v1/integrations/{integration}/recover",
    "POST /v1/api-keys", "GET /v1/api-keys",
}
