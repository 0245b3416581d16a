"""Alembic: one history per service, in the service's own package, on top of the kernel's branch.

A service's history is read from two places: its own ``<package>:migrations/versions`` and the
kernel's branch (:mod:`upgestao_kernel.schema_versions`, label ``kernel``), which creates the
kernel's tables once for every service. The service's first own revision ``depends_on`` a kernel
revision; ``upgrade`` applies every head of both.

The former layout (until commit b06866b): every service had one line of revisions ``0001``,
``0002``, ... in which the kernel's revisions were copies, the n-th copy creating kernel schema
version n (``0001`` version 1, a later ``000N_kernel_request_replies`` version 2). Those ids are gone
from the services' histories; a database stamped with one of them is re-stamped, before anything
runs, with what it holds in the present layout (:func:`present_heads`). A removed id is never used
again in that service.
"""

from __future__ import annotations

import re
from collections.abc import Collection

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from .db import create_engine

MIGRATION_LOCK = 0x75706765  # "upge": one service's migrations at a time per database
KERNEL_VERSIONS = "upgestao_kernel:schema_versions"
_FORMER_ID = re.compile(r"^[0-9]{4}$")


def alembic_config(script_location: str, database_url: str) -> Config:
    """``script_location`` like ``upgestao_identity:migrations``: its ``versions`` and the kernel's branch."""
    config = Config()
    config.set_main_option("script_location", script_location)
    config.set_main_option("path_separator", "space")
    config.set_main_option("version_locations", f"{script_location}/versions {KERNEL_VERSIONS}")
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(script_location: str, database_url: str, revision: str = "heads") -> None:
    command.upgrade(alembic_config(script_location, database_url), revision)


def downgrade(script_location: str, database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(script_location, database_url), revision)


def present_heads(former: str, revisions: Collection[str]) -> tuple[str, ...] | None:
    """What a database stamped ``former`` (an id of the former layout no longer in ``revisions``,
    the ids of the service's present history) holds now: the service's own revision just before it
    (if any) and the kernel schema version of the copies up to it. ``None``: not a former id."""
    if not _FORMER_ID.match(former) or former in revisions:
        return None
    copies = sum(1 for n in range(1, int(former) + 1) if f"{n:04d}" not in revisions)
    own = [revision for revision in revisions if _FORMER_ID.match(revision) and revision < former]
    kernel = f"kernel_v{copies}"
    return (max(own), kernel) if own else (kernel,)


def _restamp_former_layout(context, connection) -> None:
    """Replace an id of the former layout in the version table by the present heads it stands for."""
    migration_context = context.get_context()
    revisions = {script.revision for script in context.script.walk_revisions()}
    heads = migration_context.get_current_heads()
    present = {head: present_heads(head, revisions) for head in heads}
    if not any(present.values()):
        return
    adopted = sorted({rev for head, now in present.items() for rev in (now or (head,))})
    version = sa.table(migration_context.version_table, sa.column("version_num"))
    connection.execute(sa.delete(version))
    connection.execute(sa.insert(version), [{"version_num": rev} for rev in adopted])


def run_migrations(context) -> None:
    """The body of every service's ``migrations/env.py`` (online mode only)."""
    url = context.config.get_main_option("sqlalchemy.url")
    engine = create_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                # Two replicas migrating at once (init containers): one waits.
                connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
                connection.commit()
            context.configure(
                connection=connection,
                target_metadata=None,
                render_as_batch=url.startswith("sqlite"),
                transaction_per_migration=True,
            )
            _restamp_former_layout(context, connection)
            connection.commit()
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
    finally:
        engine.dispose()
