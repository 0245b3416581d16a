"""What the API fuzz (``tests/test_api_fuzz_e2e.py``) needs besides schemathesis: who calls, how a
session the fuzzer ended is replaced, how state it changed is put back, and the run's tally.

The fuzzer calls every operation as each persona (admin, attendant, dpo). An operation that ends
the caller's own session (logout, deleting the current session, a password change) is fuzzed
like any other; the persona simply logs in again before its next case. Changes that would starve
the rest of the run (a role stripped of its permissions, one's own e-mail changed so the persona
can no longer log in) are undone after the case that made them.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e_api import Api

PERSONAS = ("admin", "attendant", "dpo")
# operations that end (or may end) the caller's own session when they succeed
SESSION_ENDING = {("POST", "/v1/auth/logout"), ("DELETE", "/v1/auth/sessions/{session_id}"),
                  ("POST", "/v1/auth/password"), ("POST", "/v1/auth/password-reset/confirm")}


@dataclass
class Persona:
    name: str
    email: str
    password: str
    user_id: str
    token: str | None = None


@dataclass
class FuzzState:
    """The personas and their sessions, the roles to restore, and the tally of the run."""

    api: Api
    personas: dict[str, Persona]
    roles: list[dict]
    # real ids to put in path parameters (besides random ones): throwaway users and customers
    known_ids: dict[str, list[str]] = field(default_factory=dict)
    cases: Counter = field(default_factory=Counter)  # (persona, operation) -> cases sent
    statuses: Counter = field(default_factory=Counter)  # status -> responses
    relogins: int = 0
    outage_retries: int = 0  # cases sent again after a 503 once the platform was ready again
    no_negative_data: set[str] = field(default_factory=set)  # operations where nothing can be malformed
    restores: Counter = field(default_factory=Counter)
    failures: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def token(self, persona: str) -> str:
        """The persona's access token, logging in again when the fuzzer ended its session."""
        who = self.personas[persona]
        if who.token is None:
            deadline = time.monotonic() + 60
            response = self.api.login(who.email, who.password)
            while response.status_code in (429, 503) and time.monotonic() < deadline:  # a lockout, a restart
                time.sleep(1)
                response = self.api.login(who.email, who.password)
            assert response.status_code == 200, f"{persona} cannot log in again: {response.status_code} {response.text}"
            who.token = response.json()["access_token"]
            self.relogins += 1
        return who.token

    def wait_until_ready(self, timeout: float = 120.0) -> bool:
        """After a 503: whether ``/readyz`` was down and is ready again within ``timeout`` (a dependency
        restarted); False when it was ready all along (the 503 is the answer to the request)."""
        ready = self.api.get("/readyz")
        if ready.status_code == 200:
            return False
        deadline = time.monotonic() + timeout
        while ready.status_code != 200 and time.monotonic() < deadline:
            time.sleep(1)
            ready = self.api.get("/readyz")
        self.outage_retries += 1
        for who in self.personas.values():  # sessions may have been revoked meanwhile: log in afresh
            who.token = None
        return ready.status_code == 200

    def session_ids(self, persona: str) -> list[str]:
        """The persona's current session id (the ``sid`` of its access token): DELETE /v1/auth/sessions/{id}
        with it ends the fuzzer's own session, and the next case logs in again."""
        payload = self.token(persona).split(".")[1]
        return [json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]]

    def after(self, persona: str, method: str, path: str, status: int, secured: bool = True) -> None:
        """Bookkeeping after one case: count it, and undo what would starve the rest of the run."""
        with self.lock:
            self.cases[(persona, f"{method} {path}")] += 1
            self.statuses[status] += 1
        who = self.personas[persona]
        if (status == 401 and secured) or ((method, path) in SESSION_ENDING and 200 <= status < 300):
            who.token = None  # next case logs in again
        if (method, path) == ("PATCH", "/v1/me") and 200 <= status < 300:
            self._restore_me(persona)
        if method == "PUT" and path == "/v1/roles/{name}" and 200 <= status < 300:
            self._restore_roles()

    def _restore_me(self, persona: str) -> None:
        who = self.personas[persona]
        me = self.api.get("/v1/me", self.token(persona))
        if me.status_code == 200 and me.json().get("email", "").lower() == who.email.lower():
            return
        restored = self.api.patch("/v1/me", self.token(persona), json={"email": who.email})
        if restored.status_code != 200:  # the role may not edit its e-mail itself: an admin does
            restored = self.api.patch(f"/v1/users/{who.user_id}", self.token("admin"), json={"email": who.email})
        assert restored.status_code == 200, f"cannot restore {persona}'s e-mail: {restored.text}"
        self.restores["email"] += 1

    def _restore_roles(self) -> None:
        current = {role["name"]: role for role in self.api.get("/v1/roles", self.token("admin")).json()["items"]}
        for role in self.roles:
            now = current.get(role["name"])
            if now is not None and (sorted(now["permissions"]), sorted(now["self_editable_fields"])) == (
                    sorted(role["permissions"]), sorted(role["self_editable_fields"])):
                continue
            restored = self.api.put(f"/v1/roles/{role['name']}", self.token("admin"), json={
                "permissions": role["permissions"], "self_editable_fields": role["self_editable_fields"]})
            assert restored.status_code == 200, f"cannot restore role {role['name']}: {restored.text}"
            self.restores["role"] += 1
        for persona in PERSONAS:  # a role change ends the sessions of its users
            self.personas[persona].token = None

    def record_failure(self, persona: str, operation: str, mode: str, failure: Exception, case: Any) -> None:
        lines = [line.strip() for line in str(failure).splitlines() if line.strip()]
        with self.lock:
            self.failures.append({
                "persona": persona, "operation": operation, "mode": mode,
                "failure": " | ".join(lines[:6])[:600],
                "reproduce": case.as_curl_command()[:600] if hasattr(case, "as_curl_command") else "",
            })

    def summary(self) -> dict[str, Any]:
        operations = sorted({operation for _, operation in self.cases})
        return {
            "operations": len(operations),
            "cases": sum(self.cases.values()),
            "cases_by_persona": {p: sum(n for (who, _), n in self.cases.items() if who == p) for p in PERSONAS},
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "relogins": self.relogins,
            "outage_retries": self.outage_retries,
            "no_negative_data": sorted(self.no_negative_data),
            "restores": dict(self.restores),
            "failures": self.failures,
        }

    def report(self) -> str:
        """The run's tally as a few lines for the console."""
        summary = self.summary()
        lines = [
            f"API fuzz: {summary['operations']} operations, {summary['cases']} cases "
            f"({', '.join(f'{p} {n}' for p, n in summary['cases_by_persona'].items())}), "
            f"{len(summary['failures'])} failures",
            "  statuses: " + ", ".join(f"{status}: {n}" for status, n in summary["statuses"].items()),
            f"  sessions ended by the fuzzer and logged in again: {summary['relogins']}; "
            f"state restored: {summary['restores'] or 'none needed'}; cases sent again after a dependency "
            f"outage: {summary['outage_retries']}",
        ]
        lines += [f"  FAILED {f['persona']} {f['operation']} ({f['mode']}): {f['failure'][:200]}"
                  for f in summary["failures"]]
        return "\n".join(lines)

    def write_summary(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.summary(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
