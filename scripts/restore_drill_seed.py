"""The restore drill's data, written and read back through the gateway's HTTP API only.

``seed`` makes something every service keeps: staff users and a dpo (identity), customers, a team,
an API key (identity), a conversation with messages and a staff chat (messaging), a consent, a policy
acceptance and a privacy request started by the dpo (privacy), an integration whose secret is rotated
(integrations), a password reset whose mail the notifier sends (notifier), and reads of each (the audit
log records them). ``Seeded`` keeps what the drill needs to read the same things back after the restore:
ids, the passwords it chose, and the answers as they were (compared, never printed).
"""

from __future__ import annotations

import secrets
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import requests

PASSWORD = "Girassol-Azul-Quartzo-77"
ADMIN_EMAIL = "admin.drill@upgestao.example.com"
ADMIN_PASSWORD = "Quartzo-Azul-Girassol-42"
# identity's first admin, from the environment as in the README
ADMIN_ENV = {
    "UPGESTAO_ADMIN_EMAIL": ADMIN_EMAIL,
    "UPGESTAO_ADMIN_PASSWORD": ADMIN_PASSWORD,
    "UPGESTAO_ADMIN_BIRTH_DATE": "1980-01-15",
    "UPGESTAO_ADMIN_NAME": "Primeira Admin",
}


class SeedError(RuntimeError):
    """A call of the seed or of the read-back did not answer as expected (method, path, status)."""


class Gateway:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def call(self, method: str, path: str, token: str | None = None, expect: int = 200, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        headers.setdefault("X-Request-ID", f"drill-{uuid.uuid4().hex[:16]}")
        response = self.session.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)
        if response.status_code != expect:  # the body names fields and reasons, never a stored value
            raise SeedError(f"{method} {path}: {response.status_code}, expected {expect}: {response.text[:300]}")
        return response.json() if response.content else None

    def login(self, email: str, password: str) -> str:
        return self.call("POST", "/v1/auth/login", json={"email": email, "password": password})["access_token"]

    def login_when_ready(self, email: str, password: str, timeout: float = 60) -> str:
        """The first admin is created by identity at start: log in once it can."""
        return poll(lambda: self._try_login(email, password), timeout, f"log in as {email}")

    def _try_login(self, email: str, password: str) -> str | None:
        try:
            return self.login(email, password)
        except SeedError:
            return None


def poll(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    """``predicate()`` until truthy (its value), at most ``timeout`` seconds; raises naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise SeedError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def staff_payload(role: str, tag: str) -> dict:
    birth = date.today().replace(year=date.today().year - 30, day=1)
    digits = str(int(tag[:6], 16) % 10000).zfill(4)
    return {"full_name": f"Beatriz Carvalho {tag}", "email": f"beatriz.{tag}@example.com.br",
            "phone": f"(11) 9{digits[0]}{digits[1:]}-{digits}", "birth_date": birth.isoformat(),
            "address": {"street": "Rua Augusta", "number": "1500", "complement": "ap 12", "district": "Consolação",
                        "city": "São Paulo", "state": "SP", "postal_code": "01304-001", "country": "BR"},
            "job_title": "Atendente", "gender": "feminino", "role": role, "password": PASSWORD}


@dataclass
class Seeded:
    admin_id: str = ""
    dpo_email: str = ""
    attendant_email: str = ""
    customers: list[str] = field(default_factory=list)
    conversation: str = ""
    chat: str = ""
    integration: str = ""
    privacy_request: str = ""
    # what the API answered before the backup, compared after the restore (never printed)
    answers: dict[str, Any] = field(default_factory=dict)


def seed(gateway: Gateway, make_dpo: Callable[[str], None], customers: int = 3, messages: int = 4) -> Seeded:
    """Write the drill's data through the gateway; ``make_dpo(user_id)`` gives a user the dpo role as the
    system (identity's ``assign-role``: no API call may). Returns what the read-back needs."""
    seeded = Seeded()
    admin = gateway.login_when_ready(ADMIN_EMAIL, ADMIN_PASSWORD)
    seeded.admin_id = gateway.call("GET", "/v1/me", admin)["id"]
    people = {}
    for name, role in (("attendant", "attendant"), ("supervisor", "supervisor"), ("dpo", "attendant")):
        payload = staff_payload(role, uuid.uuid4().hex[:8])
        people[name] = (gateway.call("POST", "/v1/users", admin, 201, json=payload), payload["email"])
    make_dpo(people["dpo"][0]["id"])
    attendant = gateway.login(people["attendant"][1], PASSWORD)
    supervisor = gateway.login(people["supervisor"][1], PASSWORD)
    seeded.dpo_email, seeded.attendant_email = people["dpo"][1], people["attendant"][1]
    dpo = gateway.login(seeded.dpo_email, PASSWORD)
    gateway.call("POST", "/v1/teams", admin, 201, json={
        "name": f"Equipe {uuid.uuid4().hex[:6]}", "member_ids": [people["attendant"][0]["id"],
                                                               people["supervisor"][0]["id"]]})
    gateway.call("POST", "/v1/api-keys", admin, 201, json={"name": "Ferramenta do drill", "scopes": ["customers.read"]})
    for n in range(customers):
        tag = uuid.uuid4().hex[:8]
        created = gateway.call("POST", "/v1/customers", admin, 201,
                               json={"full_name": f"Cliente {n} {tag}", "email": f"cliente.{tag}@example.com.br"})
        seeded.customers.append(created["id"])
    conversation = gateway.call("POST", "/v1/conversations", attendant, 201,
                                json={"customer_id": seeded.customers[0], "channel": "whatsapp"})
    seeded.conversation = conversation["id"]
    for n in range(messages):
        gateway.call("POST", f"/v1/conversations/{seeded.conversation}/messages", attendant, 201,
                     json={"body": f"Mensagem {n} {secrets.token_hex(4)}",
                           "direction": "incoming" if n % 2 else "outgoing"})
    chat = gateway.call("POST", "/v1/chats", attendant, 201,
                        json={"kind": "group", "member_ids": [people["supervisor"][0]["id"]], "title": "Plantão"})
    seeded.chat = chat["id"]
    gateway.call("POST", f"/v1/chats/{seeded.chat}/messages", supervisor, 201, json={"body": "Bom dia, equipe"})
    version = gateway.call("GET", "/v1/privacy/policies/current")["version"]
    gateway.call("POST", f"/v1/privacy/policies/{version}/accept", attendant)
    gateway.call("PUT", "/v1/privacy/consents", attendant, json={"purposes": {"analytics": True},
                                                                "policy_version": version})
    request = gateway.call("POST", "/v1/privacy/requests", attendant, 201, json={"type": "consent_info"})
    seeded.privacy_request = request["id"]
    gateway.call("POST", f"/v1/privacy/requests/{seeded.privacy_request}/start", dpo)
    integration = gateway.call("POST", "/v1/integrations", admin, 201, json={
        "name": f"Tabela {uuid.uuid4().hex[:6]}", "url": "https://hooks.invalid/upgestao",
        "events": ["message.deleted"], "fields": [], "privacy_policy_url": "https://tabela.example.com/privacy"})
    seeded.integration = integration["id"]
    gateway.call("POST", f"/v1/integrations/{seeded.integration}/secret/rotate", admin)
    gateway.call("POST", "/v1/auth/password-reset", None, 202, json={"email": people["supervisor"][1]})
    seeded.answers = read_back(gateway, seeded, admin, attendant, dpo)
    return seeded


def read_back(gateway: Gateway, seeded: Seeded, admin: str, attendant: str, dpo: str) -> dict[str, Any]:
    """What the API answers for the seeded data: as the admin, the chat as its creator (an attendant: no one
    else reads a chat), the privacy request as the dpo."""
    answers: dict[str, Any] = {
        "me": gateway.call("GET", "/v1/me", admin),
        "conversation": gateway.call("GET", f"/v1/conversations/{seeded.conversation}", admin),
        "messages": gateway.call("GET", f"/v1/conversations/{seeded.conversation}/messages", admin,
                                 params={"limit": 100}),
        "chat": gateway.call("GET", f"/v1/chats/{seeded.chat}", attendant),
        "chat messages": gateway.call("GET", f"/v1/chats/{seeded.chat}/messages", attendant),
        "integrations": gateway.call("GET", "/v1/integrations", admin),
        "api_keys": gateway.call("GET", "/v1/api-keys", admin),
    }
    for n, customer in enumerate(seeded.customers):
        answers[f"customer {n}"] = gateway.call("GET", f"/v1/customers/{customer}", admin)
    answers["privacy request"] = gateway.call("GET", f"/v1/privacy/requests/{seeded.privacy_request}", dpo)
    return answers


def differing_answers(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The names of the answers that differ (the values are personal data: never shown)."""
    return [name for name in before if before[name] != after.get(name)]


def assign_role(python: str, env: Mapping[str, str], user_id: str, role: str) -> None:
    """identity's ``assign-role`` as the system (the first dpo is the operator's act)."""
    done = subprocess.run([python, "-m", "upgestao_identity", "assign-role", "--user-id", user_id, "--role", role],
                          env=dict(env), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise SeedError(f"identity assign-role failed: {done.stderr.strip()[-500:]}")
