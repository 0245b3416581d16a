"""Erasures and access bundles (H6) on real PostgreSQL, logged in as privacy's runtime role (its grants on
``export_parts`` and the JSON query over its event log are part of what is tested), with the requests area's
real ``complete_request``: an erasure completes the request only once every participant confirmed, and shreds
privacy's own records of the person; a bundle of 10,000 messages is stored sealed in parts, downloaded once
by its link, and its parts deleted."""

from __future__ import annotations

import json
import tracemalloc
import uuid
from datetime import UTC, datetime

import jsonschema
import pytest
import sqlalchemy as sa
from upgestao_kernel.context import RequestContext
from upgestao_kernel.db import create_engine
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.events import NewEvent, new_id
from upgestao_kernel.unit_of_work import UnitOfWork, is_erased
from upgestao_kernel.vault import MasterKeyring, Vault
from upgestao_privacy.service_layer import erasures, exports
from upgestao_privacy.service_layer.requests import RequestCases, get_request

from .unit.test_exports import SCHEMA, summary

PERMISSIONS = {"dpo": {"privacy.self", "privacy.review"}, "attendant": {"privacy.self"}}
DPO, ANA, BRUNO = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())


class World:
    def __init__(self, runtime_url: str, owner_url: str) -> None:
        self.engine = create_engine(runtime_url)
        self.owner = sa.create_engine(owner_url)
        self.vault = Vault(MasterKeyring(b"\x11" * 32), b"\x22" * 32)
        self.context = RequestContext(request_id=new_id())

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.engine, "privacy", self.context, vault=self.vault)

    def as_(self, actor_id: str, role: str) -> RequestCases:
        self.context = RequestContext(request_id=new_id(), actor_id=actor_id, actor_role=role,
                                      caller_service="gateway")
        return RequestCases(self.uow, lambda r: PERMISSIONS.get(r or "", set()), identity=None)

    def system(self) -> UnitOfWork:
        self.context = RequestContext(request_id=new_id(), actor_id="system", actor_role="system")
        return self.uow()

    def started(self, person: str, type_: str) -> str:
        request = self.as_(person, "attendant").file(type_)
        self.as_(DPO, "dpo").start(request["id"])
        return request["id"]

    def seal(self, subject: str, value: str) -> str:
        with self.system() as uow:
            return uow.personal.seal(subject_id=subject, resource_type="t", resource_id=None, values={"v": value},
                                     purpose="test")["v"]

    def opened(self, subject: str, sealed: str):
        with self.system() as uow:
            return uow.personal.open(subject_id=subject, resource_type="t", resource_id=None,
                                     sealed={"v": sealed}, purpose="test")["v"]

    def rows(self, sql: str) -> list:
        with self.owner.connect() as conn:
            return conn.execute(sa.text(sql)).all()

    def close(self) -> None:
        self.engine.dispose()
        self.owner.dispose()


@pytest.fixture
def world(runtime_database):
    owner_url, url = runtime_database
    w = World(url, owner_url)
    yield w
    w.close()


def confirm(world: World, service: str, request_id: str, subject: str = ANA) -> str:
    with world.system() as uow:
        return erasures.confirm_erasure(uow, service, {"request_id": request_id, "subject_id": subject,
                                                       "mode": "deletion"}, new_id())


def test_an_erasure_completes_when_every_service_confirmed_and_shreds_privacys_records(world):
    with world.system() as uow:  # a correction of Ana's, its value sealed under her, in privacy's log
        sealed = uow.personal.seal(subject_id=ANA, resource_type="correction", resource_id="c1",
                                   values={"full_name": "Ana Nova"}, purpose="test")
        uow.record(f"correction-{uuid.uuid4()}", 0, [NewEvent(type="privacy.correction_filed.v1", data={
            "requester_id": ANA, "fields": ["full_name"], "sealed": sealed})])
    brunos = world.seal(BRUNO, "Bruno Mantido")
    request_id = world.started(ANA, "deletion")
    with world.system() as uow:
        erasures.start_erasure(uow, request_id, ANA, "deletion", erasures.participants({}), ["crm"])
    assert confirm(world, "identity", request_id) == "recorded"
    with world.system() as uow:
        assert get_request(uow, request_id).state == "in_progress"
        assert erasures.erasure_progress(uow, request_id)["pending"] == ["integrations", "messaging"]
    assert confirm(world, "messaging", request_id) == "recorded"
    with world.system() as uow:  # the integrations (by default a participant, issue 15) have not told theirs yet
        assert get_request(uow, request_id).state == "in_progress"
        assert erasures.erasure_progress(uow, request_id)["pending"] == ["integrations"]
    # nothing of privacy's shredded before the last confirmation
    assert world.rows(f"SELECT shredded_at FROM subject_keys WHERE subject_id = '{ANA}'") == [(None,)]
    assert confirm(world, "integrations", request_id) == "completed"
    assert confirm(world, "messaging", request_id) == "repeated"
    with world.system() as uow:
        request = get_request(uow, request_id)
        assert request.state == "completed"
        assert erasures.erasure_progress(uow, request_id)["participants"] == {
            "identity": "confirmed", "integrations": "confirmed", "messaging": "confirmed"}
    assert is_erased(world.opened(ANA, sealed["full_name"]))
    assert world.opened(BRUNO, brunos) == "Bruno Mantido"
    [(shredded_at,)] = world.rows(f"SELECT shredded_at FROM subject_keys WHERE subject_id = '{ANA}'")
    assert shredded_at is not None
    published = [r[0] for r in world.rows("SELECT routing_key FROM outbox WHERE exchange = 'privacy.events'")]
    assert published.count("privacy.erasure_requested.v1") == 1 and published.count("privacy.erasure_completed.v1") == 1


def test_a_bundle_of_ten_thousand_messages_is_stored_sealed_and_downloaded_once(world):
    request_id = world.started(ANA, "access")
    messages = [{"id": str(uuid.uuid4()), "body": f"Mensagem {n} da Ana com acentuação " + "é" * 600}
                for n in range(10_000)]
    text_size = len(json.dumps(messages, ensure_ascii=False))
    sources = exports.ExportSources(
        identity=lambda sid: {"service": "identity", "subject_id": sid, "kind": "user",
                              "profile": {"full_name": "Ana Pessoa"}},
        messaging=lambda sid: {"service": "messaging", "subject_id": sid,
                               "conversations": [{"id": "c", "messages": messages}]},
        deliveries=lambda sid: iter(()), audit_summary=summary)
    tracemalloc.start()
    try:
        with world.system() as uow:
            url = exports.prepare_export(uow, request_id, ANA, "access", sources, exports.ExportSettings())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the bundle's text (megabytes) is never held whole: parts are sealed and stored as they fill (what is held
    # at once is about one part being sealed, whatever the bundle's size)
    assert peak < text_size / 2, (peak, text_size)
    token = url.rsplit("/", 1)[1]
    with world.system() as uow:
        request = get_request(uow, request_id)
    assert request.state == "completed" and request.has_download
    parts = world.rows(f"SELECT part, subject_id, sealed FROM export_parts WHERE request_id = '{request_id}'")
    assert len(parts) > 1 and {p.subject_id for p in parts} == {ANA}
    assert not any("Mensagem" in p.sealed for p in parts)
    assert not any(token in str(r) for r in world.rows("SELECT stream_id, data FROM events"))  # only its hash

    gateway = RequestContext(request_id=new_id(), caller_service="gateway")
    world.context = gateway
    with world.uow() as uow:
        started = exports.start_download(uow, token)
    text = []
    for part in range(started["parts"]):
        with world.uow() as uow:
            text.append(exports.read_part(uow, token, started["lease"], part))
    bundle = json.loads("".join(text))
    jsonschema.validate(bundle, SCHEMA)
    assert len(bundle["sections"]["messaging"]["conversations"][0]["messages"]) == 10_000
    assert world.rows(f"SELECT count(*) FROM export_parts WHERE request_id = '{request_id}'")[0][0] == 0
    with world.uow() as uow, pytest.raises(ServiceError) as again:
        exports.start_download(uow, token)
    assert again.value.status == 410
    exported = [json.loads(r[0]) if isinstance(r[0], str) else r[0] for r in world.rows(
        "SELECT body FROM outbox WHERE exchange = 'audit' AND routing_key = 'audit.privacy.export'")]
    assert exported and all(r.get("subject_id") == ANA for r in exported)


def test_the_runtime_role_may_not_change_a_bundles_parts(world):
    with world.engine.connect() as conn, pytest.raises(sa.exc.ProgrammingError):
        conn.execute(sa.text("UPDATE export_parts SET sealed = 'x'"))


def test_privacys_own_records_are_found_in_its_event_log_by_json(world):
    request_id = world.started(ANA, "access")
    world.started(BRUNO, "access")
    with world.system() as uow:
        records = exports.own_records(uow, ANA)
    assert {r["id"] for r in records if r["stream"] == "request"} == {request_id}
    assert datetime.fromisoformat(records[0]["occurred_at"]).tzinfo == UTC


# -- the mixin's RPCs on the running service


def test_only_the_gateway_may_take_a_bundle_and_nobody_sees_an_unknown_erasure(privacy):
    caller = privacy.caller(privacy.DPO)  # a dpo's own token, but from a test client's broker user: not the gateway
    for method, args in (("export_download", ("x" * 43,)), ("export_part", ("x" * 43, "y" * 43, 0))):
        with pytest.raises(ServiceError) as refused:
            getattr(caller, method)(*args)
        assert refused.value.status == 403, method

    denied = [r for r in world_audit(privacy) if r["outcome"] == "denied" and r["resource_type"] == "subject_bundle"]
    assert [r["action"] for r in denied] == ["export", "read"]  # each refusal audited (kept in the outbox)
    with pytest.raises(ServiceError) as missing:
        caller.erasure_progress(str(uuid.uuid4()))
    assert missing.value.status == 404


def world_audit(privacy) -> list[dict]:
    with privacy.engine.connect() as conn:
        bodies = [r[0] for r in conn.execute(sa.text("SELECT body FROM outbox WHERE exchange = 'audit' ORDER BY id"))]
    bodies = [json.loads(b) if isinstance(b, str) else b for b in bodies]
    return [rec for b in bodies for rec in (b.get("records") if "records" in b else [b])]
