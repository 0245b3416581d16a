"""What the kernel needs to know to run, migrate and rebuild this service."""

from upgestao_kernel.cli import ServiceDefinition

DEFINITION = ServiceDefinition(
    name="identity",
    service_class="upgestao_identity.service:IdentityService",
    migrations="upgestao_identity:migrations",
)
