"""Access and portability bundles (H6) on the fake unit of work: the bundle's text in parts (valid JSON
whatever the part size), gathering (every section, sealed parts, the request completed with a link), the
bundle validating against its JSON Schema, the single-use, expiring link and its lease, and an erasure
that overtakes a download."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from upgestao_kernel.config import ConfigError
from upgestao_kernel.context import system_context
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.fakes import FakeUnitOfWork, FakeVault, MemoryStore
from upgestao_privacy.domain.exports import PART_CHARS, BundleWriter, dumps, fragments, secret_hash
from upgestao_privacy.service_layer import exports

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "subject_bundle.schema.json").read_text())
A = str(uuid.uuid4())
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def summary(subject_id: str) -> dict:
    return {"subject_id": subject_id, "total_records": 3, "denied_attempts": 1,
            "accesses": [{"actor_id": "u1", "actor_role": "attendant", "service": "messaging",
                          "resource_type": "message", "action": "read", "purpose": "support", "fields": ["body"],
                          "count": 2, "first_at": T0.isoformat(), "last_at": T0.isoformat()}],
            "shared_with": [{"recipient": "crm-x", "service": "integrations", "fields": ["email"], "count": 1,
                             "first_at": T0.isoformat(), "last_at": T0.isoformat()},
                            # an integration privacy's read model knows (the summary names it, issue 15)
                            {"recipient": "integration:int_acme", "service": "integrations", "fields": ["body"],
                             "count": 2, "first_at": T0.isoformat(), "last_at": T0.isoformat(), "name": "CRM Acme",
                             "privacy_policy_url": "https://acme.example/privacidade"},
                            {"recipient": "integration:int_acme", "service": "identity", "fields": ["email"],
                             "count": 1, "first_at": T0.isoformat(), "last_at": T0.isoformat(), "name": "CRM Acme",
                             "privacy_policy_url": "https://acme.example/privacidade"}]}


def sources(messages: int = 3, deliveries_fail: bool = False) -> exports.ExportSources:
    def deliveries(sid):
        if deliveries_fail:
            raise ServiceError("forbidden", "no", 403)
        yield {"id": "d1", "kind": "password_reset", "status": "sent", "recipient_id": sid}

    return exports.ExportSources(
        identity=lambda sid: {"service": "identity", "subject_id": sid, "kind": "customer",
                              "profile": {"full_name": "Maria da Silva", "email": "maria@example.com"}},
        messaging=lambda sid: {"service": "messaging", "subject_id": sid, "conversations": [
            {"id": "c1", "messages": [{"id": f"m{n}", "body": f"Mensagem número {n} ção"} for n in range(messages)]}],
            "messages_authored": [], "chats": [], "read_cursors": [], "teams": [], "attachments": []},
        deliveries=deliveries,
        audit_summary=summary,
    )


class World:
    def __init__(self) -> None:
        self.store = MemoryStore(service="privacy")
        self.vault = FakeVault()
        self.completed: list[tuple[str, dict]] = []

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.store, system_context(), vault=self.vault)

    def complete(self, uow, request_id, **kwargs) -> None:
        self.completed.append((request_id, kwargs))

    def prepare(self, request_id: str | None = None, **kw) -> tuple[str, str]:
        request_id = request_id or str(uuid.uuid4())
        settings = exports.ExportSettings(base_url="https://app.example", third_party_policies={
            "crm-x": "https://crm-x.example/privacidade"})
        with self.uow() as uow:
            url = exports.prepare_export(uow, request_id, A, "access", sources(**kw), settings, now=T0,
                                         complete=self.complete)
        return request_id, url

    def download(self, token: str, now: datetime = T0) -> str:
        with self.uow() as uow:
            started = exports.start_download(uow, token, now=now)
        text = []
        for part in range(started["parts"]):
            with self.uow() as uow:
                text.append(exports.read_part(uow, token, started["lease"], part, now=now))
        return "".join(text)


@pytest.fixture
def world() -> World:
    return World()


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


@pytest.mark.parametrize("part_chars", [1, 7, 64, PART_CHARS])
def test_the_bundle_text_is_one_json_document_whatever_the_part_size(part_chars):
    writer = BundleWriter(part_chars)
    pieces = [*writer.header({"request_id": "r"}), *writer.section("identity", {"a": "ç" * 50}),
              *writer.section("messaging", {"b": [1, 2, 3]}), *writer.close()]
    assert all(len(p) <= part_chars for p in pieces)
    assert "".join(pieces) and len("".join(pieces)) == writer.size
    document = json.loads("".join(pieces))
    assert document["sections"] == {"identity": {"a": "ç" * 50}, "messaging": {"b": [1, 2, 3]}}
    assert document["schema_version"] == "1.0"
    with pytest.raises(ValueError):
        list(writer.section("nope", {}))


@pytest.mark.parametrize("value", [{}, [], "s", 5, None, [[[[[[1]]]]]], {"x": [{"y": '"q"'}]},
                                   {"a": [1, {"b": [], "c": {"d": [1, 2, {"e": "ç"}]}}], "z": None, "k": {}}])
def test_a_section_in_fragments_is_the_same_text(value):
    assert "".join(fragments(value)) == dumps(value)


def test_a_bundle_holds_every_section_and_validates_against_its_schema(world):
    request_id, url = world.prepare()
    assert url.startswith("https://app.example/v1/privacy/exports/")
    assert world.completed[0][0] == request_id and world.completed[0][1]["download_url"] == url
    bundle = json.loads(world.download(token_of(url)))
    jsonschema.validate(bundle, SCHEMA)
    sections = bundle["sections"]
    assert sections["identity"]["profile"]["full_name"] == "Maria da Silva"
    assert [m["body"] for m in sections["messaging"]["conversations"][0]["messages"]][0] == "Mensagem número 0 ção"
    assert sections["notifications"] == {"available": True, "items": [
        {"id": "d1", "kind": "password_reset", "status": "sent", "recipient_id": A}]}
    # each third party once: an integration as privacy's read model names it, another as the setting does
    assert sections["audit"]["third_parties"] == [
        {"recipient": "crm-x", "name": None, "privacy_policy_url": "https://crm-x.example/privacidade"},
        {"recipient": "integration:int_acme", "name": "CRM Acme",
         "privacy_policy_url": "https://acme.example/privacidade"}]
    assert sections["audit"]["accesses"][0]["actor_role"] == "attendant"
    assert bundle["request_id"] == request_id and bundle["subject_id"] == A and bundle["type"] == "access"


def test_parts_are_sealed_under_the_person_and_only_the_tokens_hash_is_kept(world):
    request_id, url = world.prepare(messages=8000)
    token = token_of(url)
    rows = world.store.tables["export_parts"]
    assert len(rows) > 1 and all(row["subject_id"] == A for row in rows.values())
    stored = json.dumps([e.data for e in world.store.events] + list(rows.values()), default=str)
    assert "Mensagem" not in stored and "Maria" not in stored and token not in stored
    assert world.store.stream(f"export-link-{secret_hash(token)}")
    assert world.store.audit_records(action="create", resource_type="subject_bundle", subject_id=A)
    assert world.store.published("privacy.export_prepared.v1")[0]["data"]["parts"] == len(rows)
    assert "Mensagem número 7999" in world.download(token)
    assert "export_parts" not in world.store.tables or not world.store.tables["export_parts"]  # gone after


def test_the_link_is_single_use(world):
    _, url = world.prepare()
    world.download(token_of(url))
    with world.uow() as uow, pytest.raises(ServiceError) as refused:
        exports.start_download(uow, token_of(url), now=T0)
    assert refused.value.status == 410
    [exported] = world.store.audit_records(action="export", resource_type="subject_bundle", subject_id=A)
    # the download's record names what the bundle gives away: the profile's fields, the messages' bodies
    assert {"bundle", "full_name", "email", "body"} <= set(exported["fields"])
    assert not any("-" in name for name in exported["fields"])  # names, never ids nor values


def test_two_downloads_at_once_one_wins(world):
    from upgestao_kernel.eventstore import ConcurrencyError

    _, url = world.prepare()
    first, second = world.uow(), world.uow()
    with pytest.raises(ConcurrencyError):
        with first:
            exports.start_download(first, token_of(url), now=T0)
            with second:
                exports.start_download(second, token_of(url), now=T0)


def test_an_expired_link_an_unknown_or_malformed_token_and_a_wrong_lease_are_refused(world):
    _, url = world.prepare()
    token = token_of(url)
    with world.uow() as uow, pytest.raises(ServiceError) as expired:
        exports.start_download(uow, token, now=T0 + timedelta(days=7, seconds=1))
    assert expired.value.status == 410
    for bad in ("x" * 43, "../../etc", None, 7):
        with world.uow() as uow, pytest.raises(ServiceError) as unknown:
            exports.start_download(uow, bad, now=T0)
        assert unknown.value.status == 404
    with world.uow() as uow:
        started = exports.start_download(uow, token, now=T0)
    for lease in ("y" * 43, None):
        with world.uow() as uow, pytest.raises(ServiceError) as wrong:
            exports.read_part(uow, token, lease, 0, now=T0)
        assert wrong.value.status == 410
    with world.uow() as uow, pytest.raises(ServiceError) as late:
        exports.read_part(uow, token, started["lease"], 0, now=T0 + timedelta(hours=1))
    assert late.value.status == 410
    with world.uow() as uow, pytest.raises(ServiceError) as part:
        exports.read_part(uow, token, started["lease"], 99, now=T0)
    assert part.value.status == 422


def test_the_notifier_unavailable_is_said_not_hidden(world):
    _, url = world.prepare(deliveries_fail=True)
    bundle = json.loads(world.download(token_of(url)))
    assert bundle["sections"]["notifications"] == {"available": False, "reason": "forbidden", "items": []}
    jsonschema.validate(bundle, SCHEMA)


def test_a_bundle_is_prepared_once(world):
    request_id, _ = world.prepare()
    with world.uow() as uow:
        assert exports.prepare_export(uow, request_id, A, "access", sources(), exports.ExportSettings(), now=T0,
                                      complete=world.complete) is None
    assert len(world.completed) == 1


def test_erasing_the_person_makes_a_pending_bundle_unreadable(world):
    _, url = world.prepare()
    with world.uow() as uow:
        started = exports.start_download(uow, token_of(url), now=T0)
        uow.personal.shred(subject_id=A, resource_type="data_subject", purpose="erasure")
    with world.uow() as uow, pytest.raises(ServiceError) as gone:
        exports.read_part(uow, token_of(url), started["lease"], 0, now=T0)
    assert gone.value.status == 410


def test_privacys_own_records_of_the_person_are_in_the_bundle(world):
    from upgestao_kernel.events import NewEvent

    with world.uow() as uow:
        sealed = uow.personal.seal(subject_id=A, resource_type="correction", resource_id="c1",
                                   values={"full_name": "Maria S."}, purpose="test")
        uow.record("correction-c1", 0, [NewEvent(type="privacy.correction_filed.v1", data={
            "requester_id": A, "fields": ["full_name"], "sealed": sealed})])
    _, url = world.prepare()
    bundle = json.loads(world.download(token_of(url)))
    [record] = [r for r in bundle["sections"]["privacy"] if r["stream"] == "correction"]
    assert record["values"] == {"full_name": "Maria S."} and record["data"]["fields"] == ["full_name"]
    assert not any(r["stream"] == "export-link" for r in bundle["sections"]["privacy"])


def test_a_contact_request_filed_before_it_was_anyones_is_in_the_bundle(world):
    from upgestao_kernel.events import NewEvent

    request = str(uuid.uuid4())
    with world.uow() as uow:  # filed through the contact channel (nobody's yet: sealed under the request)...
        sealed = uow.personal.seal(subject_id=request, resource_type="privacy_request", resource_id=request,
                                   values={"email": "maria@example.com", "message": "Quero meus dados"},
                                   purpose="test")
        uow.record(f"request-{request}", 0, [NewEvent(type="privacy.request_filed.v1", data={
            "type": "access", "subject_id": None, "sealed": sealed})])
        # ...then verified: the address was Maria's
        uow.record(f"request-{request}", 1, [NewEvent(type="privacy.request_verified.v1", data={
            "type": "access", "subject_id": A})])
    _, url = world.prepare()
    bundle = json.loads(world.download(token_of(url)))
    filed = [r for r in bundle["sections"]["privacy"] if r["id"] == request and r["type"].endswith("filed.v1")]
    assert filed and filed[0]["values"] == {"email": "maria@example.com", "message": "Quero meus dados"}


def test_settings_from_the_environment():
    settings = exports.ExportSettings.from_env({"PRIVACY_EXPORT_LINK_TTL_S": "3600",
                                                "PRIVACY_PUBLIC_BASE_URL": "https://x.example/",
                                                "PRIVACY_THIRD_PARTY_POLICIES": '{"crm": "https://crm/p"}'})
    assert settings.link_ttl == timedelta(hours=1) and settings.base_url == "https://x.example"
    assert settings.third_party_policies == {"crm": "https://crm/p"}
    for wrong in ({"PRIVACY_EXPORT_LINK_TTL_S": "5"}, {"PRIVACY_EXPORT_LINK_TTL_S": "soon"},
                  {"PRIVACY_PUBLIC_BASE_URL": "javascript:alert(1)"}, {"PRIVACY_THIRD_PARTY_POLICIES": "[1]"},
                  {"PRIVACY_THIRD_PARTY_POLICIES": "{"}):
        with pytest.raises(ConfigError) as refused:
            exports.ExportSettings.from_env(wrong)
        assert refused.value.variable == next(iter(wrong))
    assert exports.ExportSettings.from_env({"NOTIFIER_PUBLIC_URL": "http://gw:8000/"}).base_url == "http://gw:8000"
    assert exports.ExportSettings.from_env({}).base_url == "http://127.0.0.1:8000"
