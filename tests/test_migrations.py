"""Every service's Alembic history goes up, down and up again, on PostgreSQL
and on the embedded SQLite default."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from upgestao_kernel.migrations import downgrade, upgrade
from upgestao_kernel.schema import kernel_metadata

MIGRATIONS = [
    "upgestao_identity:migrations",
    "upgestao_messaging:migrations",
    "upgestao_privacy:migrations",
    "upgestao_notifier:migrations",
    "upgestao_gateway:migrations",
]


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
@pytest.mark.parametrize("migrations", MIGRATIONS)
def test_upgrade_downgrade_upgrade(migrations, backend, database_factory, tmp_path):
    url = database_factory("migrations") if backend == "postgresql" else f"sqlite:///{tmp_path / 'm.sqlite3'}"
    engine = sa.create_engine(url)

    def tables() -> set[str]:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}

    upgrade(migrations, url)
    assert set(kernel_metadata.tables) <= tables()
    downgrade(migrations, url)
    assert tables() == set()
    upgrade(migrations, url)
    assert set(kernel_metadata.tables) <= tables()
    engine.dispose()
