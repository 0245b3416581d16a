"""What the kernel needs to know to run, migrate and rebuild this service."""

from upgestao_kernel.cli import ServiceDefinition

DEFINITION = ServiceDefinition(
    name="messaging",
    service_class="upgestao_messaging.service:MessagingService",
    migrations="upgestao_messaging:migrations",
)
