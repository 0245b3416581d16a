"""Kernel test fixtures: every storage test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from kernel_sample import sample_metadata
from upgestao_kernel.db import create_engine
from upgestao_kernel.schema import kernel_metadata
from upgestao_kernel.vault import MasterKeyring, Vault


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path, database_factory) -> sa.Engine:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'kernel.sqlite3'}"
    else:
        url = database_factory("kernel")
    engine = create_engine(url, pool_size=5)
    kernel_metadata.create_all(engine)
    sample_metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(database_factory) -> sa.Engine:
    engine = create_engine(database_factory("kernel"), pool_size=5)
    kernel_metadata.create_all(engine)
    sample_metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def vault() -> Vault:
    return Vault(MasterKeyring(b"\x11" * 32), b"\x22" * 32)
