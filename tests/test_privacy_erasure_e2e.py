"""Access bundles and erasure across services, end to end through the gateway (issue 14, R4.2, R5.2, R5.3).

* An access request of a staff user: the DPO starts it, privacy gathers every service's part into a bundle,
  the person gets an e-mail with a single-use link; the link downloads (no session) a bundle that validates
  against its JSON Schema and holds the profile, the person's messages and the audit summary; a second use
  answers 410; no other service's broker user may fetch it from privacy directly.
* A deletion of person A (a staff user with messages in a chat shared with B): A files it, the DPO starts it,
  identity and messaging erase and confirm, the request completes. Then every service's event store (identity,
  messaging, privacy) is replayed with the service's own vault: every sealed value is opened under A's, B's and
  its stream's id, and nothing opened says anything about A, while B's values read as before; nothing of A is
  in any table in clear; and ``audit verify`` still verifies the log through the HTTP API.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import sqlalchemy as sa
from e2e_api import PASSWORD, wait_for_audit
from e2e_mail import mail_to, text_and_html
from e2e_messaging import Person, database_texts, new_desk
from upgestao_kernel.config import load_settings
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.testing import wait_for
from upgestao_kernel.vault import Vault, load_keys

pytest_plugins = ["e2e_messaging_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "services/privacy/docs/subject_bundle.schema.json").read_text())
LINK = re.compile(r"/v1/privacy/exports/([A-Za-z0-9_-]{20,128})")
TIMEOUT = 30
REPLAYED = ("identity", "messaging", "privacy")


def staff(api, admin_token: str) -> tuple[Person, str]:
    """A new attendant, logged in, and the tag its name, e-mail and phone carry (what is "about" them)."""
    user, tokens = api.create_staff(admin_token, "attendant")
    tag = user["email"].split("@")[0].split(".")[-1]
    return Person(user["id"], "attendant", tokens["access_token"], user["email"]), tag


def file_and_start(api, person: Person, dpo: str, type_: str) -> str:
    filed = api.post("/v1/privacy/requests", person.token, json={"type": type_})
    assert filed.status_code == 201, filed.text
    request_id = filed.json()["id"]
    started = api.post(f"/v1/privacy/requests/{request_id}/start", dpo)
    assert started.status_code == 200, started.text
    return request_id


def completed(api, token: str, request_id: str) -> dict:
    def done() -> dict | None:
        got = api.get(f"/v1/privacy/requests/{request_id}", token)
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["state"] not in ("error", "denied", "canceled"), body
        return body if body["state"] == "completed" else None

    return wait_for(done, timeout=TIMEOUT, interval=0.2)


def test_an_access_bundle_holds_the_profile_the_messages_and_the_audit_summary_behind_a_single_use_link(
        api, platform, admin_token, dpo):
    desk = new_desk(api, platform, admin_token)
    a, a_tag = staff(api, admin_token)
    b, _ = staff(api, admin_token)
    chat = desk.chat(a, b)["id"]
    said = f"Mensagem da pessoa {a_tag} para o pedido de acesso"
    desk.post(a, chat, said)
    assert api.get(f"/v1/users/{a.id}", admin_token).status_code == 200  # an access the summary must show

    request_id = file_and_start(api, a, dpo, "access")
    done = completed(api, a.token, request_id)
    assert done["answer"]["bundle"]["schema_version"] == "1.0"

    def link() -> str | None:
        for _, message in mail_to(platform, a.email):
            found = LINK.search(text_and_html(message)[0])
            if found:
                return found.group(1)
        return None

    token = wait_for(link, timeout=TIMEOUT, interval=0.2)
    # another service's broker user cannot take the bundle from privacy past the gateway
    from nameko.standalone.rpc import ServiceRpcProxy

    with ServiceRpcProxy("privacy", {"AMQP_URI": platform.broker_uris["messaging"], "serializer": "json"},
                         timeout=20) as privacy:
        with pytest.raises(ServiceError) as refused:
            privacy.export_download(token)
    assert refused.value.status == 403

    got = api.get(f"/v1/privacy/exports/{token}")  # no session: the link is the credential
    assert got.status_code == 200, got.text
    assert got.headers["Cache-Control"] == "no-store"
    bundle = got.json()
    jsonschema.validate(bundle, SCHEMA)
    sections = bundle["sections"]
    assert bundle["subject_id"] == a.id and bundle["request_id"] == request_id
    assert a.email in json.dumps(sections["identity"], ensure_ascii=False)  # the profile, opened
    assert said in json.dumps(sections["messaging"], ensure_ascii=False)  # the messages they wrote
    audit = sections["audit"]
    assert audit["subject_id"] == a.id and audit["total_records"] > 0
    assert any(entry["actor_role"] == "admin" for entry in audit["accesses"])
    assert any(r["id"] == request_id for r in sections["privacy"] if r["stream"] == "request")

    again = api.get(f"/v1/privacy/exports/{token}")
    assert again.status_code == 410, again.text
    assert api.get(f"/v1/privacy/exports/{'x' * 43}").status_code == 404
    exported = wait_for_audit(api, dpo, {"action": "export", "resource_type": "subject_bundle", "outcome": "success"},
                              what="the bundle's download", subject_id=a.id, service="privacy")
    assert {"bundle", "email", "full_name", "body"} <= set(exported["fields"])  # what it gave away, by name


def test_erasure_is_replay_proof_across_identity_messaging_and_privacy(api, platform, admin_token, dpo):
    desk = new_desk(api, platform, admin_token)
    a, a_tag = staff(api, admin_token)
    b, b_tag = staff(api, admin_token)
    chat = desk.chat(a, b)["id"]
    for n in range(3):
        desk.post(a, chat, f"Dados da pessoa {a_tag} número {n}")
    kept = desk.post(b, chat, f"A outra pessoa {b_tag} fica")["id"]
    correction = api.post("/v1/privacy/corrections", a.token, json={  # privacy's own record of A, sealed under A
        "changes": {"job_title": f"Supervisora {a_tag}"}, "reason": f"Meu cargo mudou {a_tag}"})
    assert correction.status_code == 201, correction.text
    # (the replay below would see them: before the erasure, every service opens something about A)
    for service in REPLAYED:
        assert any(a_tag in text for text in open_every_sealed_value(platform, service, (a.id, b.id))), service

    request_id = file_and_start(api, a, dpo, "deletion")
    completed(api, dpo, request_id)
    progress = api.get(f"/v1/privacy/requests/{request_id}/erasure", dpo)
    assert progress.status_code == 200, progress.text
    assert progress.json()["participants"] == {"identity": "confirmed", "integrations": "confirmed",
                                               "messaging": "confirmed"}  # integrations: issue 15
    assert progress.json()["completed"] and progress.json()["privacy_shredded"]
    assert api.get(f"/v1/privacy/requests/{request_id}/erasure", b.token).status_code == 404  # not B's
    assert api.get(f"/v1/messages/{kept}", b.token).json()["body"] == f"A outra pessoa {b_tag} fica"

    # every service's event store replayed with its own vault: nothing readable about A, B intact
    opened: dict[str, list[str]] = {}
    for service in REPLAYED:
        opened[service] = open_every_sealed_value(platform, service, (a.id, b.id))
        about_a = [text for text in opened[service] if a_tag in text]
        assert about_a == [], f"{service}: {len(about_a)} values about the erased person still open"
    assert any(b_tag in text for text in opened["identity"]), "B's profile must stay readable"
    assert any(f"A outra pessoa {b_tag}" in text for text in opened["messaging"]), "B's message must stay"
    # and nothing of A in clear in any table (read models, indexes, outbox, events)
    for service in REPLAYED:
        clear = [where for where, text in database_texts(platform.database_urls[service]) if a_tag in text]
        assert clear == [], f"{service}: the erased person's tag in clear at {clear[:5]}"

    # the audit log keeps its records of A (ids and field names: nothing to erase) and still verifies
    erased = wait_for_audit(api, dpo, {"action": "erase", "outcome": "success"}, what="privacy's own erasure",
                            subject_id=a.id, service="privacy")
    assert erased["fields"] == []
    public_key = api.get("/v1/audit/public-key", dpo).json()["public_key"]
    verified = subprocess.run([sys.executable, "-m", "upgestao_privacy", "audit", "verify", "--url", platform.url,
                               "--token", dpo, "--public-key", public_key], env=platform.environment(),
                              capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0 and verified.stdout.startswith("OK"), verified.stdout + verified.stderr[-2000:]


def test_blocking_suspends_the_person_keeps_their_data_and_the_dpo_lifts_it(api, platform, admin_token, dpo):
    desk = new_desk(api, platform, admin_token)
    user, tokens = api.create_staff(admin_token, "attendant")
    c = Person(user["id"], "attendant", tokens["access_token"], user["email"])
    b, _ = staff(api, admin_token)
    said = desk.post(c, desk.chat(c, b)["id"], "Guardem isto enquanto bloqueado")["id"]

    request_id = file_and_start(api, c, dpo, "blocking")
    completed(api, dpo, request_id)
    progress = api.get(f"/v1/privacy/requests/{request_id}/erasure", dpo).json()
    assert progress["mode"] == "blocking" and progress["completed"] and not progress["privacy_shredded"]
    assert api.login(c.email, PASSWORD).status_code != 200  # processing suspended: no sign-in
    assert api.get(f"/v1/messages/{said}", b.token).json()["body"] == "Guardem isto enquanto bloqueado"  # kept

    refused = api.post(f"/v1/privacy/requests/{request_id}/unblock", b.token)
    assert refused.status_code == 403
    lifted = api.post(f"/v1/privacy/requests/{request_id}/unblock", dpo)
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["lifted"] is True
    assert api.login(c.email, PASSWORD).status_code == 200
    assert api.post(f"/v1/privacy/requests/{request_id}/unblock", dpo).status_code == 409  # once


# -- the replay ------------------------------------------------------------------------------------------


def open_every_sealed_value(platform, service: str, subjects: tuple[str, ...]) -> list[str]:
    """Every vault ciphertext in ``service``'s event log, opened with the service's own keys under each of
    ``subjects`` and the event's stream id (whichever authenticates): the opened texts (erased ones left out)."""
    env = platform.environment(service)
    vault = Vault(*load_keys(load_settings(service, env), env))
    engine = sa.create_engine(platform.database_urls[service])
    texts: list[str] = []
    try:
        with engine.connect() as conn:
            live = set(conn.execute(sa.text("SELECT subject_id FROM subject_keys WHERE shredded_at IS NULL")).scalars())
            rows = conn.execute(sa.text("SELECT stream_id, data FROM events ORDER BY position")).all()
            for stream_id, data in rows:
                data = json.loads(data) if isinstance(data, str) else data
                owner = stream_id.split("-", 1)[-1]
                for field, ciphertext in sealed_values(data):
                    # a shredded subject's key opens nothing (its values read as erased): only live keys are tried
                    for subject in [s for s in (*subjects, owner) if s in live]:
                        try:
                            value = vault.decrypt(conn, subject, field, ciphertext)
                        except Exception:  # not this subject's: the associated data does not authenticate
                            continue
                        if isinstance(value, str):
                            texts.append(value)
                            break
    finally:
        engine.dispose()
    return texts


def sealed_values(value: Any, field: str = "") -> list[tuple[str, str]]:
    """``(field, ciphertext)`` of every vault ciphertext (``v1:…``) in an event's data, at any depth."""
    if isinstance(value, str):
        return [(field, value)] if value.startswith("v1:") else []
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in sealed_values(item, str(key))]
    if isinstance(value, list):
        return [found for item in value for found in sealed_values(item, field)]
    return []


def test_sealed_values_are_found_at_any_depth():
    data = {"sealed": {"body": "v1:abc", "subject": None}, "items": [{"name": "v1:def"}], "n": 1, "v": "v2"}
    assert sealed_values(data) == [("body", "v1:abc"), ("name", "v1:def")]
