"""Unit test fixtures: an in-memory audit log built with the real domain functions (``fake_log``), and
privacy's use cases wired to the fake unit of work and the in-memory audit store (``fake_privacy``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from upgestao_kernel.context import RequestContext
from upgestao_kernel.fakes import FakeUnitOfWork, MemoryStore
from upgestao_privacy.adapters.memory_audit_log import memory_transactions, with_memory_audit_log
from upgestao_privacy.domain.checkpoints import Checkpoint, CheckpointSigner
from upgestao_privacy.domain.leaves import leaf_for
from upgestao_privacy.domain.merkle import (
    DictNodeSource,
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    range_proof,
)
from upgestao_privacy.domain.verification import header_line, record_line
from upgestao_privacy.service_layer import ingest
from upgestao_privacy.service_layer.audit_queries import AuditQueries

SEED = bytes(range(32))
T0 = datetime(2026, 11, 29, 19, 0, 0, 123456, tzinfo=UTC)


class FakeLog:
    """Records, their tree (every complete aligned node) and signed checkpoints, as the server keeps them."""

    def __init__(self, seed: bytes = SEED) -> None:
        self.signer = CheckpointSigner(seed)
        self.records: list[dict] = []
        self.frontier = Frontier()
        self.nodes = DictNodeSource()
        self.checkpoints: list[Checkpoint] = []

    @staticmethod
    def body(seq: int) -> dict:
        return {
            "actor": f"user-{seq % 7}",
            "action": "person.updated",
            "subject": f"person-{seq}",
            "at": (T0 + timedelta(milliseconds=seq)).isoformat(),
            "data": {"field": "name", "value": f"Conceição {seq}", "n": seq},
        }

    def append(self, count: int, *, checkpoint_every: int | None = None) -> FakeLog:
        for _ in range(count):
            seq = self.frontier.size
            leaf = leaf_for(self.body(seq), seq)
            self.records.append({**self.body(seq), "seq": seq})
            self.nodes.add(self.frontier.append(leaf_hash(leaf)))
            if checkpoint_every and self.frontier.size % checkpoint_every == 0:
                self.sign()
        return self

    def sign(self, signer: CheckpointSigner | None = None) -> Checkpoint:
        size = self.frontier.size
        checkpoint = (signer or self.signer).sign(size, self.frontier.root(), T0 + timedelta(seconds=size))
        self.checkpoints.append(checkpoint)
        return checkpoint

    @property
    def latest(self) -> Checkpoint:
        if not self.checkpoints or self.checkpoints[-1].tree_size != self.frontier.size:
            self.sign()
        return self.checkpoints[-1]

    def export(self, first: int = 0, end: int | None = None, checkpoint: Checkpoint | None = None) -> list[str]:
        checkpoint = checkpoint or self.latest
        size = checkpoint.tree_size
        end = size if end is None else end
        earlier = [c for c in self.checkpoints if first < c.tree_size <= end]
        proof = range_proof(first, end, size, self.nodes) if first < end else []  # an empty range needs none
        header = header_line(first, end, checkpoint, earlier, proof, exported_at=T0 + timedelta(days=1))
        lines = [header]
        for seq in range(first, end):
            lines.append(record_line(seq, self.nodes.nodes[(0, seq)], self.records[seq]))
        return lines

    def inclusion(self, seq: int, size: int) -> list[bytes]:
        return inclusion_proof(seq, size, self.nodes)

    def consistency(self, first: int, second: int) -> list[bytes]:
        return consistency_proof(first, second, self.nodes)


@pytest.fixture
def fake_log():
    """``fake_log(size, checkpoint_every=None)``: a FakeLog with ``size`` records."""

    def make(size: int, checkpoint_every: int | None = None, seed: bytes = SEED) -> FakeLog:
        return FakeLog(seed).append(size, checkpoint_every=checkpoint_every)

    return make


# -- privacy's use cases on the fake unit of work -------------------------------------------------

DPO = RequestContext(request_id="req-dpo", actor_id="dpo-1", actor_role="dpo", correlation_id="req-dpo")
ATTENDANT = RequestContext(request_id="req-att", actor_id="att-1", actor_role="attendant", correlation_id="req-att")
ROLE_PERMISSIONS = {"dpo": frozenset({"audit.read"}), "attendant": frozenset({"customers.read"})}


class FakePrivacy:
    """Privacy's use cases on the in-memory store: ingest through :func:`memory_transactions`, queries in
    fake units of work acting as whoever the test says. ``store`` holds the log's rows (``audit_records``,
    ``audit_tree_nodes``, ...) and, in its outbox, the audit records the queries themselves emit."""

    def __init__(self, make_record: Callable[..., dict], seed: bytes = SEED) -> None:
        self.store = MemoryStore(service="privacy")
        self.signer = CheckpointSigner(seed)
        self.transaction = memory_transactions(self.store)
        self.record = make_record

    def ingest(self, bodies: list[dict], *, checkpoint_every: int = 1000) -> ingest.IngestResult:
        return ingest.store(self.transaction, [ingest.parse(body) for body in bodies], self.signer,
                            checkpoint_every=checkpoint_every)

    def queries(self, context: RequestContext = DPO) -> AuditQueries:
        return AuditQueries(lambda: with_memory_audit_log(FakeUnitOfWork(self.store, context)),
                            lambda role: ROLE_PERMISSIONS.get(role or "", frozenset()), self.signer)

    def query_audits(self, **match) -> list[dict]:
        """The ``audit_query`` records the queries emitted, in order."""
        return self.store.audit_records(action="audit_query", **match)


@pytest.fixture
def fake_privacy(audit_record) -> FakePrivacy:
    return FakePrivacy(audit_record)
