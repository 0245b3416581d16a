"""What the kernel needs to know to run, migrate and rebuild this service."""

from upgestao_kernel.cli import ServiceDefinition

from .adapters.projections import projections
from .commands import COMMANDS
from .settings import check_config

DEFINITION = ServiceDefinition(
    name="identity",
    service_class="upgestao_identity.service:IdentityService",
    migrations="upgestao_identity:migrations",
    projections=projections,
    commands=COMMANDS,
    check_config=check_config,  # settings, signing keys, the first admin: before anything starts
    holds_personal_data=True,  # users and customers, sealed per data subject: the only holder of the vault keys
    # a login waiting for its bcrypt slot holds a worker (no database connection):
    # enough workers that queued logins never starve other requests
    default_max_workers=64,
)
