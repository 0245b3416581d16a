"""What the kernel needs to know to run, migrate and rebuild this service."""

from upgestao_kernel.cli import ServiceDefinition

from .adapters.projections import projections
from .settings import check_config

DEFINITION = ServiceDefinition(
    name="integrations",
    service_class="upgestao_integrations.service:IntegrationsService",
    migrations="upgestao_integrations:migrations",
    projections=projections,
    check_config=check_config,  # the allowed networks, the secrets key, timeouts, the retry schedule
    batch_queues=lambda: _batch_queues(),  # its relay reports their .parked queues' depth
)


def _batch_queues() -> list[str]:
    from .entrypoints.events_in import SOURCES, queue_name

    return [queue_name(handler) for handler in SOURCES]
