"""A whole platform of the tests' own: a fresh vhost, fresh PostgreSQL databases (or the
embedded SQLite default), every process started, all of it removed afterwards."""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from upgestao_kernel.config import env_prefix
from upgestao_kernel.service_registry import service_definitions
from upgestao_kernel.testing import PG_ADMIN_URL, cleanup, create_database, create_vhost, delete_vhost, drop_database

ROOT = Path(__file__).resolve().parent.parent
SERVICES = tuple(service_definitions())  # every installed service's name (its entry point)


def load_script(relative: str, name: str, imports_from: tuple[str, ...] = ()):
    """A script of the repository (``scripts/…``, ``bench/…``) as module ``name``; the folders it
    imports from (``imports_from``, e.g. ``("bench", "scripts")``) are put on the path first."""
    for folder in imports_from:
        if str(ROOT / folder) not in sys.path:
            sys.path.append(str(ROOT / folder))
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@contextmanager
def own_platform(platform_module, data_dir: Path, label: str, env: Mapping[str, str],
                 database: str = "postgresql", timeout: float = 90) -> Iterator:
    """A started ``Platform`` (``platform_module`` is ``scripts/upgestao_platform.py``) with
    ``database_urls`` (service -> URL; empty on SQLite: the owners' on PostgreSQL, privacy's processes
    running as the runtime role the platform creates) and ``vhost``; stopped and removed after, the
    runtime roles too (in the background: ``upgestao_kernel.testing.cleanup``)."""
    tag = uuid.uuid4().hex[:8]
    vhost = f"upgestao-{label}-{tag}"
    amqp_uri = create_vhost(vhost)
    env = {"UPGESTAO_ENV": "test", "UPGESTAO_RETRY_DELAYS_MS": "100,200", **env}
    databases = {name: f"t_{label}_{name}_{tag}" for name in SERVICES} if database == "postgresql" else {}
    urls = {service: create_database(name) for service, name in databases.items()}
    env.update({f"{env_prefix(service)}_DATABASE_URL": url for service, url in urls.items()})
    # the embedded default: no database URL may come from the tests' own environment either
    inherited = {k: os.environ.pop(k) for k in list(os.environ) if k.endswith("_DATABASE_URL")} if not urls else {}
    running = platform_module.Platform(data_dir=data_dir, amqp_uri=amqp_uri,
                                       http_address=platform_module.free_address(), env=env)
    running.database_urls = urls
    running.vhost = vhost
    try:
        running.start(timeout=timeout)
        yield running
    finally:
        running.stop()
        os.environ.update(inherited)
        roles = tuple(getattr(running, "database_roles_created", ()))

        def remove() -> None:  # in this order: a role is dropped once no database holds a grant of it
            for name in databases.values():
                drop_database(name)
            for role in roles:
                drop_role(role)
            delete_vhost(vhost)

        cleanup.submit(f"remove the {label} platform's databases, roles and vhost {vhost}", remove)


def drop_role(role: str) -> None:
    """Drop a login role a platform created (its database is gone: no grant holds it any more)."""
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {conn.dialect.identifier_preparer.quote(role)}")
    finally:
        admin.dispose()
