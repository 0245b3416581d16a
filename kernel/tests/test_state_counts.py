"""StateCounts (issue 18): rows by state, the active states counted at every scrape, the settled ones from a
base counted once per interval plus the rows settled since its watermark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from upgestao_kernel.db import create_engine
from upgestao_kernel.schema import UtcDateTime
from upgestao_kernel.state_counts import StateCounts

metadata = sa.MetaData()
items = sa.Table("items", metadata, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("state", sa.String(20), nullable=False),
                 sa.Column("changed_at", UtcDateTime, nullable=False))
T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now.timestamp()


def values(families) -> dict[str, float]:
    [family] = families
    assert family.name == "upgestao_things"
    return {s.labels["state"]: s.value for s in family.samples}


def test_active_states_are_exact_at_every_scrape_settled_ones_from_a_base_plus_what_settled_since(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path}/t.sqlite3")
    metadata.create_all(engine)
    clock = Clock()
    counts = StateCounts("upgestao_things", "Things by state.", state_column=items.c.state,
                         changed_column=items.c.changed_at, active=("queued", "sending"),
                         settled=("sent", "failed"), recount_s=600, margin_s=120, clock=clock)

    def put(id_: int, state: str, at: datetime) -> None:
        with engine.begin() as conn:
            conn.execute(sa.delete(items).where(items.c.id == id_))
            conn.execute(items.insert().values(id=id_, state=state, changed_at=at))

    assert values(counts(engine)) == {"queued": 0, "sending": 0, "sent": 0, "failed": 0}  # every state, at 0
    put(1, "sent", T0 - timedelta(hours=1))
    put(2, "queued", T0)
    clock.now = T0 + timedelta(seconds=601)  # the base is counted again: row 1 in it
    assert values(counts(engine)) == {"queued": 1, "sending": 0, "sent": 1, "failed": 0}
    put(2, "sent", clock.now)  # settled after the watermark: seen at once, without a recount
    put(3, "failed", clock.now)
    put(4, "sending", clock.now)
    assert values(counts(engine)) == {"queued": 0, "sending": 1, "sent": 2, "failed": 1}
    clock.now += timedelta(seconds=700)  # recounted: the same figures from the new base
    assert values(counts(engine)) == {"queued": 0, "sending": 1, "sent": 2, "failed": 1}


def test_the_scrape_takes_no_write_lock(tmp_path):
    """On SQLite a read that took the write gate would stall the service's writers for the scrape's time."""
    engine = create_engine(f"sqlite:///{tmp_path}/t.sqlite3")
    metadata.create_all(engine)
    counts = StateCounts("upgestao_things", "Things by state.", state_column=items.c.state,
                         changed_column=items.c.changed_at, active=("queued",), settled=("sent",))
    with engine.begin() as writer:  # a writer holds the gate meanwhile
        writer.execute(items.insert().values(id=1, state="queued", changed_at=T0))
        assert values(counts(engine)) == {"queued": 0, "sent": 0}  # answered from the snapshot, not waiting


def test_the_outbox_source_takes_no_write_lock_either(tmp_path):
    from upgestao_kernel.metrics import outbox_source
    from upgestao_kernel.schema import kernel_metadata

    engine = create_engine(f"sqlite:///{tmp_path}/o.sqlite3")
    kernel_metadata.create_all(engine)
    source = outbox_source("svc", engine)
    with engine.begin() as writer:  # a writer holds the gate meanwhile
        writer.execute(sa.text("SELECT 1"))
        depth = {f.name: f.samples[0].value for f in source()}["upgestao_outbox_depth"]
    assert depth == 0
