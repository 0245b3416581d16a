"""What the kernel needs to know to run, migrate and rebuild this service."""

from upgestao_kernel.cli import ServiceDefinition

from .adapters.projections import projections
from .commands_search import COMMANDS
from .settings import check_config

DEFINITION = ServiceDefinition(
    name="messaging",
    service_class="upgestao_messaging.service:MessagingService",
    migrations="upgestao_messaging:migrations",
    projections=projections,
    holds_personal_data=True,  # message bodies, conversation subjects and chat titles, through its vault
    check_config=check_config,  # the edit window, the snooze sweep, the search key
    commands=COMMANDS,  # reindex (the search index from the messages, after a key change)
    relay_poll_ms=10,  # events are pushed live to people waiting (GET /v1/stream): 10 ms, 40 ms when idle
)
