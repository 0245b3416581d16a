"""A small HTTP client of the gateway for end-to-end tests: log in, act as someone,
create staff users of any role, wait for an access to reach the audit log."""

from __future__ import annotations

import itertools
import re
import time
import uuid
from datetime import date, datetime
from zoneinfo import ZoneInfo

import requests
from upgestao_kernel.testing import wait_for

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
PASSWORD = "Girassol-Azul-Quartzo-77"
ADMIN_EMAIL = "admin@upgestao.example.com"
ADMIN_PASSWORD = "Quartzo-Azul-Girassol-42"
_counter = itertools.count(1)

# The first admin comes from the environment (as in the README); lockouts are
# short so a test can watch one expire. bcrypt keeps its production cost (12).
E2E_IDENTITY_ENV = {
    "UPGESTAO_ADMIN_EMAIL": ADMIN_EMAIL,
    "UPGESTAO_ADMIN_PASSWORD": ADMIN_PASSWORD,
    "UPGESTAO_ADMIN_BIRTH_DATE": "1980-01-15",
    "UPGESTAO_ADMIN_NAME": "Primeira Admin",
    "IDENTITY_LOCKOUT_BASE_S": "2",
    "IDENTITY_IP_FAILURE_LIMIT": "1000",
    # the contact channel's codes live 25 s instead of 10 minutes, so an e2e test sees one expire
    # (every other test gives its code back within seconds of the e-mail)
    "PRIVACY_CONTACT_CODE_TTL_S": "25",
    # every e2e filing comes from 127.0.0.1: the API tests and the privacy centre's browser tests together file
    # more than the 10 an hour one address may (that budget is tested in services/privacy/tests)
    "PRIVACY_CONTACT_ADDRESS_LIMIT": "100",
}


def today_in_brazil() -> date:
    return datetime.now(SAO_PAULO).date()


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a non-leap year
        return day.replace(year=day.year - years, day=28)


def address(**over) -> dict:
    return {"street": "Rua Augusta", "number": "1500", "complement": "ap 12", "district": "Consolação",
            "city": "São Paulo", "state": "SP", "postal_code": "01304-001", "country": "BR", **over}


def staff_payload(role: str = "attendant", **over) -> dict:
    n = next(_counter)
    tag = uuid.uuid4().hex[:8]
    data = {
        "full_name": f"Beatriz Carvalho {tag}",
        "email": f"beatriz.{tag}@example.com.br",
        "phone": f"(11) 9{n % 10}{tag[:3].translate(str.maketrans('abcdef', '123456'))}-{n % 10000:04d}",
        "birth_date": years_before(today_in_brazil(), 30).isoformat(),
        "address": address(),
        "job_title": "Atendente",
        "gender": "feminino",
        "role": role,
        "password": PASSWORD,
    }
    data.update(over)
    return data


class Api:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def request(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.session.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)

    def get(self, path, token=None, **kw):
        return self.request("GET", path, token, **kw)

    def post(self, path, token=None, **kw):
        return self.request("POST", path, token, **kw)

    def patch(self, path, token=None, **kw):
        return self.request("PATCH", path, token, **kw)

    def put(self, path, token=None, **kw):
        return self.request("PUT", path, token, **kw)

    def delete(self, path, token=None, **kw):
        return self.request("DELETE", path, token, **kw)

    def login(self, email: str, password: str) -> requests.Response:
        return self.post("/v1/auth/login", json={"email": email, "password": password})

    def tokens(self, email: str, password: str = PASSWORD) -> dict:
        response = self.login(email, password)
        assert response.status_code == 200, response.text
        return response.json()

    def admin_tokens(self, email: str, password: str, timeout: float = 30) -> dict:
        """The first admin is created by identity at start; wait for it."""
        answer: dict = {}

        def logged_in() -> bool:
            response = self.login(email, password)
            if response.status_code == 200:
                answer.update(response.json())
                return True
            return False

        wait_for(logged_in, timeout=timeout, interval=0.5)
        return answer

    def create_staff(self, admin_token: str, role: str = "attendant", **over) -> tuple[dict, dict]:
        """(the created user, its login tokens)."""
        payload = staff_payload(role, **over)
        response = self.post("/v1/users", admin_token, json=payload)
        assert response.status_code == 201, response.text
        user = response.json()
        return user, self.tokens(payload["email"], payload["password"])


# -- the audit log (GET /v1/audit, as a dpo) ------------------------------------------------

AUDIT_TIMEOUT_S = 20.0  # outbox relay -> RabbitMQ -> privacy's ingest: usually well under a second
_NOT_ID = re.compile(r"[^A-Za-z0-9._-]+")


def new_request_id(label: str) -> str:
    """A unique, well-formed X-Request-ID that says what it was for (``label`` is tidied)."""
    # at most 64 characters in all (what the gateway keeps; a longer one is replaced): "e2e-" + 46 + "-" + 12
    return f"e2e-{_NOT_ID.sub('-', label).strip('-')[:46]}-{uuid.uuid4().hex[:12]}"


def audit_matches(record: dict, expected: dict) -> bool:
    """``record`` has every ``expected`` value; ``fields`` is a subset check."""
    for key, value in expected.items():
        if key == "fields":
            if not set(value) <= set(record.get("fields") or ()):
                return False
        elif record.get(key) != value:
            return False
    return True


def create_user(api: Api, admin_token: str, role: str = "attendant", **over) -> dict:
    """A staff user created by an admin, without logging in (bcrypt is slow: log in only when needed)."""
    response = api.post("/v1/users", admin_token, json=staff_payload(role, **over))
    assert response.status_code == 201, response.text
    return response.json()


def audit_search(api: Api, token: str, **params) -> dict:
    response = api.get("/v1/audit", token, params=params)
    assert response.status_code == 200, f"GET /v1/audit?{params}: {response.status_code} {response.text}"
    return response.json()


def wait_for_audit(api: Api, token: str, expected: dict, *, what: str, timeout: float = AUDIT_TIMEOUT_S,
                   **params) -> dict:
    """The first record of ``GET /v1/audit?<params>`` (newest first) matching ``expected``, polled until
    ``timeout``: audit records reach the log asynchronously. Fails naming ``what`` and what was found."""
    deadline = time.monotonic() + timeout
    items: list[dict] = []
    while True:
        items = audit_search(api, token, limit=500, **params)["items"]
        for record in items:
            if audit_matches(record, expected):
                return record
        if time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    found = [{k: r.get(k) for k in ("seq", "service", "action", "resource_type", "subject_id", "actor_id",
                                     "fields", "outcome", "request_id")} for r in items[:10]]
    raise AssertionError(f"no audit record for {what} within {timeout}s: expected {expected} in "
                         f"GET /v1/audit?{params}; found {len(items)}: {found}")
