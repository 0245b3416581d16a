"""What the kernel needs to know to run, migrate and rebuild this service."""

from upgestao_kernel.cli import ServiceDefinition

DEFINITION = ServiceDefinition(
    name="privacy",
    service_class="upgestao_privacy.service:PrivacyService",
    migrations="upgestao_privacy:migrations",
)
