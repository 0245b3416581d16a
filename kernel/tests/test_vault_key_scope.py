"""Keys only where needed (issue 11, finding 9): a service that keeps no personal data never reads the
vault's master or blind-index key, so a bad (or absent) key cannot even stop it; one that does refuses to
start without valid keys."""

from __future__ import annotations

import pytest
from kernel_sample_services import LedgerService, TallyService
from upgestao_kernel.cli import LazyKeys
from upgestao_kernel.config import ConfigError, load_settings


def test_lazy_keys_are_read_only_when_used(monkeypatch, tmp_path):
    monkeypatch.setenv("UPGESTAO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("UPGESTAO_MASTER_KEY", "not a key")
    keys = LazyKeys(load_settings("tally"))  # nothing read yet: the relay and migrations stop here
    with pytest.raises(ConfigError) as refused:
        tuple(keys)
    assert refused.value.variable == "UPGESTAO_MASTER_KEY"


def test_a_service_without_personal_data_starts_with_no_usable_key(run_service, monkeypatch):
    monkeypatch.setenv("UPGESTAO_MASTER_KEY", "not a key")
    monkeypatch.setenv("UPGESTAO_BLIND_INDEX_KEY", "not a key either")
    tally = run_service(TallyService, None, database_url="sqlite://")
    container = run_service.started[-1][0]
    db = next(d for d in container.dependencies if d.attr_name == "db")
    assert db._vault is None and not db.personal_data
    assert tally.health()  # serving
    with pytest.raises(ConfigError):  # the service that keeps personal data refuses the same keys
        run_service(LedgerService, None, database_url="sqlite://")
