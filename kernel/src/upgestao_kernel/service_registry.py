"""The services of the platform, from one place: the ``upgestao.services`` entry-point group.

Each service's ``pyproject.toml`` declares its :class:`~upgestao_kernel.cli.ServiceDefinition`::

    [project.entry-points."upgestao.services"]
    identity = "upgestao_identity.definition:DEFINITION"

so that installing a service is what adds it: the launcher (``scripts/upgestao_platform.py``
reads the same group, without importing the services), the tests and the deploy checks list the
services from here, never from a list of their own.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from .cli import ServiceDefinition

ENTRY_POINT_GROUP = "upgestao.services"


def service_definitions() -> dict[str, ServiceDefinition]:
    """Every installed service's definition, by service name (sorted)."""
    definitions = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        definition = entry_point.load()
        if not isinstance(definition, ServiceDefinition) or definition.name != entry_point.name:
            raise TypeError(f"entry point {entry_point.name} = {entry_point.value}: "
                            "expected the ServiceDefinition of the service of that name")
        definitions[entry_point.name] = definition
    return dict(sorted(definitions.items()))


def service_package(definition: ServiceDefinition) -> str:
    """The package a service runs as (``python -m <package>``): ``upgestao_identity``."""
    return definition.service_class.partition(".")[0]
