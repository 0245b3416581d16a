"""Every service's Alembic history goes up, down and up again, on PostgreSQL and on the embedded
SQLite default; and a database migrated with the former layout (the kernel's revisions copied into
every service, until commit b06866b) upgrades to the present one and ends with the same schema."""

from __future__ import annotations

import io
import subprocess
import tarfile
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from upgestao_kernel import schema_versions
from upgestao_kernel.migrations import alembic_config, downgrade, upgrade
from upgestao_kernel.schema import kernel_metadata
from upgestao_kernel.service_registry import service_definitions

ROOT = Path(__file__).resolve().parent.parent
FORMER_LAYOUT = "b06866b"  # the last commit whose services carried copies of the kernel's revisions
MIGRATIONS = sorted(definition.migrations for definition in service_definitions().values())
# services born after the former layout (no database of theirs was ever migrated with it)
BORN_AFTER_FORMER_LAYOUT = frozenset({"upgestao_integrations:migrations"})
KERNEL_FOLDER = str(Path(schema_versions.__file__).parent)


@pytest.fixture(params=["postgresql", "sqlite"])
def new_database(request, tmp_path, database_factory) -> Callable[[str], str]:
    """``make(name) -> url``: a fresh, empty database on the backend of the test's parameter."""
    if request.param == "sqlite":
        return lambda name: f"sqlite:///{tmp_path / name}.sqlite3"
    return lambda name: database_factory("migrations")


@pytest.mark.parametrize("migrations", MIGRATIONS)
def test_upgrade_downgrade_upgrade(migrations, new_database):
    url = new_database("m")
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


@pytest.mark.parametrize("migrations", MIGRATIONS)
def test_a_service_history_stands_on_the_kernel_branch_and_copies_none_of_it(migrations):
    script = ScriptDirectory.from_config(alembic_config(migrations, "sqlite://"))
    kernel = {revision.revision for revision in script.walk_revisions() if revision.path.startswith(KERNEL_FOLDER)}
    assert kernel, "the kernel's branch is not part of the history"
    for revision in script.walk_revisions():
        if revision.revision in kernel:
            continue
        assert "kernel" not in revision.module.__name__ and "kernel" not in (revision.doc or "").lower(), (
            f"{revision.path}: the kernel's tables ship from the kernel's branch only")
        if revision.down_revision is None:  # a first own revision: on top of the kernel's tables
            dependencies = revision.dependencies or ()
            dependencies = {dependencies} if isinstance(dependencies, str) else set(dependencies)
            assert dependencies & kernel, f"{revision.path}: depends_on no kernel revision"


# -- from the former layout -------------------------------------------------------


@pytest.fixture(scope="module")
def former_histories(tmp_path_factory) -> Path:
    """The services' ``migrations`` folders as they were at ``FORMER_LAYOUT``, from git."""
    shallow = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--is-shallow-repository"],
                             capture_output=True, text=True)
    if shallow.stdout.strip() == "true":
        pytest.skip(f"a shallow clone: {FORMER_LAYOUT} may not be in it")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", FORMER_LAYOUT, "services"],
                             capture_output=True, check=True).stdout
    root = tmp_path_factory.mktemp("former")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, members=[m for m in tar.getmembers() if "/migrations/" in m.name], filter="data")
    return root


def former_location(former_histories: Path, migrations: str) -> Path:
    package = migrations.partition(":")[0]
    (location,) = former_histories.glob(f"services/*/src/{package}/migrations")
    return location


def former_revisions(location: Path) -> list[str]:
    return sorted(path.name.partition("_")[0] for path in (location / "versions").glob("[0-9]*.py"))


def upgrade_former(location: Path, url: str, revision: str) -> None:
    """The former layout alone: its own versions folder, no kernel branch (as alembic ran it then)."""
    config = Config()
    config.set_main_option("script_location", str(location))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, revision)


# every index (expression indexes too) and trigger, as the database's catalogue spells them
CATALOGUE = {
    "sqlite": "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE type IN ('index', 'trigger')",
    "postgresql": "SELECT 'index', indexname, tablename, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                  "UNION ALL SELECT 'trigger', trigger_name, event_object_table, "
                  "event_manipulation || ' ' || action_timing || ' ' || action_statement "
                  "FROM information_schema.triggers WHERE trigger_schema = 'public'",
}


def schema(url: str) -> dict:
    """Tables, columns, keys, indexes and the version rows: what two migrated databases must share."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        found = {}
        with warnings.catch_warnings():  # SQLite's expression indexes: read from the catalogue below
            warnings.simplefilter("ignore", sa.exc.SAWarning)
            for table in sorted(inspector.get_table_names()):
                found[table] = {
                    "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                    "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
                    "unique": sorted((u["name"] or "", tuple(u["column_names"]))
                                     for u in inspector.get_unique_constraints(table)),
                }
        with engine.connect() as connection:
            found["indexes and triggers"] = sorted(tuple(row) for row in connection.exec_driver_sql(
                CATALOGUE[engine.dialect.name]))
            found["alembic_version rows"] = sorted(
                row[0] for row in connection.exec_driver_sql("SELECT version_num FROM alembic_version"))
        return found
    finally:
        engine.dispose()


@pytest.mark.parametrize("migrations", sorted(set(MIGRATIONS) - BORN_AFTER_FORMER_LAYOUT))
def test_a_database_of_the_former_layout_upgrades_to_the_same_schema(migrations, former_histories, new_database):
    location = former_location(former_histories, migrations)
    fresh = new_database("fresh")
    upgrade(migrations, fresh)
    expected = schema(fresh)
    revisions = former_revisions(location)
    assert revisions[0] == "0001" and len(revisions) >= 2, revisions  # the kernel's tables, then more
    for revision in revisions:  # stopped at each revision of the former line, then upgraded today
        url = new_database(f"former-{revision}")
        upgrade_former(location, url, revision)
        assert schema(url)["alembic_version rows"] == [revision]
        upgrade(migrations, url)
        assert schema(url) == expected, f"{migrations} from the former {revision}"
        upgrade(migrations, url)  # and again: nothing left to do
        assert schema(url) == expected
