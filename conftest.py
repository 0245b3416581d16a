"""Root conftest: eventlet first (nameko needs it), then the shared fixtures, and the ``infra`` mark.

Every test that needs the broker or a database server is marked ``infra`` here, from the fixtures it
uses (:data:`INFRA_FIXTURES`, directly or through other fixtures; a fixture parametrized ``"sqlite"``
needs no server whatever it depends on) and from its parameters (any ``"postgresql"``), so that
``make test-fast`` (``pytest -m "not infra"``) runs the rest. It does so with
``UPGESTAO_TEST_OFFLINE=1``: the broker, the management API and every database URL then point at a
closed port, and a test that needs them without saying so fails instead of passing unmarked; and in
one process per core (``--shard i/n``: every n-th selected test; ``scripts/test_fast.py``), as
eventlet's monkey-patching keeps pytest-xdist's workers from starting. ``make test`` runs the infra
tests in parts (``--infra-part``, each module in one of them: ``scripts/test_all.py``).
"""

import upgestao_kernel.green  # noqa: F401,I001  (first: eventlet monkey-patching)

import importlib.util
import os
from pathlib import Path

import pytest

from upgestao_kernel.db import green_postgres

green_postgres()  # as in the running services: psycopg2 yields to other greenlets

# Fixtures that reach RabbitMQ or PostgreSQL (the kernel's testing plugin, nameko's pytest plugin,
# the kernel's and the services' conftests, the end-to-end platforms).
INFRA_FIXTURES = frozenset({
    "database_factory", "amqp_vhost", "amqp_uri", "rabbit_config", "rabbit_manager", "container_factory",
    "runner_factory", "platform", "routes_gateway",
})
# Tests that reach them without such a fixture (node id -> why): each would fail under test-fast.
INFRA_TESTS = {
    "tests/test_check_config.py::test_platform_start_fails_fast_with_just_the_message":
        "Platform.start asks the broker first (its preflight), before the services' check-config",
    "tests/test_check_config.py::test_platformctl_up_prints_the_message_and_exits_non_zero":
        "`platformctl up` (a subprocess with an environment of its own: the default broker) asks the broker first; "
        "found by running test-fast with RabbitMQ and PostgreSQL stopped",
}
CLOSED_PORT = "127.0.0.1:9"  # discard: nothing listens, a connection is refused at once

if os.environ.get("UPGESTAO_TEST_OFFLINE") == "1":
    from upgestao_kernel.config import env_prefix
    from upgestao_kernel.service_registry import service_definitions

    os.environ.update({
        "AMQP_URI": f"amqp://guest:guest@{CLOSED_PORT}/",
        "UPGESTAO_TEST_AMQP_URI": f"amqp://guest:guest@{CLOSED_PORT}/",
        "UPGESTAO_TEST_RABBIT_API": f"http://guest:guest@{CLOSED_PORT}",
        "UPGESTAO_TEST_PG_URL": f"postgresql+psycopg2://postgres@{CLOSED_PORT}/postgres",
        **{f"{env_prefix(name)}_DATABASE_URL": f"postgresql+psycopg2://postgres@{CLOSED_PORT}/{name}"
           for name in service_definitions()},
    })

# Tests always run against the machine's real PostgreSQL and RabbitMQ.
os.environ.setdefault("UPGESTAO_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")

pytest_plugins = ["upgestao_kernel.testing"]


def _load_split():
    """``scripts/test_all.py``: which part of the infra tests a module is in (``--infra-part``)."""
    script = Path(__file__).parent / "scripts" / "test_all.py"
    spec = importlib.util.spec_from_file_location("upgestao_test_all", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


split = _load_split()


def needs_infra(item: pytest.Item) -> bool:
    """Whether ``item`` reaches the broker or a database server (see the module's docstring)."""
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    if "postgresql" in params.values():
        return True
    fixtureinfo = getattr(item, "_fixtureinfo", None)
    if fixtureinfo is None:
        return False
    definitions = fixtureinfo.name2fixturedefs
    seen: set[str] = set()
    pending = list(fixtureinfo.initialnames)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in INFRA_FIXTURES:
            return True
        if params.get(name) == "sqlite" or name not in definitions:
            continue
        pending.extend(definitions[name][-1].argnames)
    return False




def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--shard", default=None, metavar="I/N",
                     help="run only every N-th selected test, from the I-th (1-based): one of N processes")
    split.addoption(parser)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    return split.ignore_collect(collection_path, config)


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    """Mark ``infra`` before ``-m`` deselects; keep the ``--infra-part``'s and share what is left between the
    shards after."""
    for item in items:
        if item.get_closest_marker("e2e") or item.nodeid in INFRA_TESTS or needs_infra(item):
            item.add_marker(pytest.mark.infra)
    result = yield
    split.deselect_other_parts(config, items)  # --infra-part: scripts/test_all.py
    shard = config.getoption("--shard")
    if shard:
        index, _, count = shard.partition("/")
        if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
            raise pytest.UsageError(f"--shard {shard}: expected I/N with 1 <= I <= N")
        keep = items[int(index) - 1::int(count)]
        kept = set(keep)
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = keep
    return result
