"""What the kernel needs to know to run, migrate and rebuild this service."""

from upgestao_kernel.cli import ServiceDefinition

from .adapters.projections import projections
from .commands import COMMANDS
from .settings import check_config

DEFINITION = ServiceDefinition(
    name="notifier",
    service_class="upgestao_notifier.service:NotifierService",
    migrations="upgestao_notifier:migrations",
    projections=projections,
    commands=COMMANDS,
    check_config=check_config,  # SMTP_URL, the sender, the links' address, the suppression key
)
