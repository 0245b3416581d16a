"""The service command line, driven as an operator would: rebuild, parked
list/replay, master-key rotation (on the sample ledger/tally services)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import kernel_sample_services as sample_services
import pytest
import sqlalchemy as sa
from kernel_sample import AccountsProjection, accounts, create_sample_tables, read_email
from upgestao_kernel.cli import ServiceDefinition, main
from upgestao_kernel.context import system_context
from upgestao_kernel.db import create_engine
from upgestao_kernel.parking import list_parked
from upgestao_kernel.projections import snapshot
from upgestao_kernel.relay import OutboxRelay, drain
from upgestao_kernel.schema import subject_keys
from upgestao_kernel.testing import wait_for
from upgestao_kernel.unit_of_work import UnitOfWork
from upgestao_kernel.vault import MasterKeyring, Vault, key_id

LEDGER = ServiceDefinition(
    name="ledger",
    service_class="kernel_sample_services:LedgerService",
    migrations="unused",
    projections=lambda: [AccountsProjection()],
)
TALLY = ServiceDefinition(name="tally", service_class="kernel_sample_services:TallyService", migrations="unused")


@pytest.fixture
def ledger(run_service, database_factory):
    url = database_factory("ledger")
    create_sample_tables(url)
    proxy = run_service(sample_services.LedgerService, None, database_url=url)
    return proxy, url


def test_rebuild_command_restores_read_models(ledger, capsys):
    proxy, url = ledger
    for n in range(3):
        proxy.open_account(f"acc-{n}", f"p{n}@example.com")
    engine = create_engine(url)
    with engine.connect() as conn:
        before = snapshot(conn, [AccountsProjection()])
    with engine.begin() as conn:
        conn.execute(accounts.delete())
    assert main(LEDGER, ["rebuild"]) == 0
    assert "from 3 events" in capsys.readouterr().out
    with engine.connect() as conn:
        assert snapshot(conn, [AccountsProjection()]) == before


def test_parked_list_and_replay_commands(ledger, run_service, amqp_uri, capsys):
    proxy, url = ledger
    sample_services.BEHAVIOUR["fail"] = True
    tally = run_service(sample_services.TallyService, create_sample_tables)
    try:
        proxy.open_account("acc-1", "a@example.com")
        drain(OutboxRelay(create_engine(url), amqp_uri, services=["ledger"]))
        wait_for(lambda: list_parked(amqp_uri, "tally.on_ledger_event"))
        assert main(TALLY, ["parked", "list"]) == 0
        listing = capsys.readouterr().out
        assert "tally.on_ledger_event" in listing and "ledger.account_opened.v1" in listing
        assert "RuntimeError: the handler failed" in listing  # the type and a fixed reason, never str(exc)
        sample_services.BEHAVIOUR["fail"] = False
        assert main(TALLY, ["parked", "replay"]) == 0
        assert "replayed 1 parked messages" in capsys.readouterr().out
        wait_for(lambda: len(tally.handled()) == 1)
    finally:
        sample_services.BEHAVIOUR["fail"] = False


def test_rotate_master_key_command(ledger, monkeypatch, capsys):
    proxy, url = ledger
    proxy.open_account("acc-1", "a@example.com")  # key wrapped by the local generated master key
    engine = create_engine(url)
    with engine.connect() as conn:
        old_kid = conn.execute(sa.select(subject_keys.c.master_kid)).scalar_one()
    old_key = (Path(os.environ["UPGESTAO_DATA_DIR"]) / "keys" / "master.key").read_text().strip()
    new_key = base64.b64encode(b"\x42" * 32).decode()
    monkeypatch.setenv("UPGESTAO_MASTER_KEY", f"{new_key},{old_key}")
    assert main(LEDGER, ["rotate-master-key"]) == 0
    assert "re-wrapped 1 data keys" in capsys.readouterr().out
    with engine.connect() as conn:
        new_kid = conn.execute(sa.select(subject_keys.c.master_kid)).scalar_one()
    assert new_kid == key_id(b"\x42" * 32) != old_kid
    # with only the new master key, the data written before is still readable
    blind_key = (Path(os.environ["UPGESTAO_DATA_DIR"]) / "keys" / "blind-index.key").read_text().strip()
    vault = Vault(MasterKeyring(b"\x42" * 32), base64.b64decode(blind_key))
    with UnitOfWork(engine, "ledger", system_context(), vault=vault) as uow:
        assert read_email(uow, "acc-1") == "a@example.com"
