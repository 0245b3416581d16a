"""nameko entrypoints of the messaging service (thin: no domain logic here)."""

from upgestao_kernel.nameko_ext import Database, HealthRpc


class MessagingService(HealthRpc):
    name = "messaging"

    db = Database()
