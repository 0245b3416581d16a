"""What the kernel needs to know to run, migrate and rebuild this service."""

from upgestao_kernel.cli import ServiceDefinition

from .adapters.projections import projections
from .adapters.stream_feeder import relay_loops
from .commands import COMMANDS
from .settings import check_config

DEFINITION = ServiceDefinition(
    name="privacy",
    service_class="upgestao_privacy.service:PrivacyService",
    migrations="upgestao_privacy:migrations",
    commands=COMMANDS,
    projections=projections,  # the rights areas' read models (requests, corrections/policies/consents, incidents)
    holds_personal_data=True,  # a contact's address, a correction's values, a bundle: sealed per data subject
    relay_loops=relay_loops,  # the audit stream is published by the relay process
    # the audit log's settings and signing key, as the service loads them at start
    check_config=check_config,
    batch_queues=lambda: ["privacy.audit-ingest"],  # its relay reports privacy.audit-ingest.parked's depth
)
