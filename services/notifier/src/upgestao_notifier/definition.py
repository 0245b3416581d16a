"""What the kernel needs to know to run, migrate and rebuild this service."""

from upgestao_kernel.cli import ServiceDefinition

DEFINITION = ServiceDefinition(
    name="notifier",
    service_class="upgestao_notifier.service:NotifierService",
    migrations="upgestao_notifier:migrations",
)
