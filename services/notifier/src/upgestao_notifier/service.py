"""nameko entrypoints of the notifier service (thin: no domain logic here)."""

from upgestao_kernel.nameko_ext import Database, HealthRpc


class NotifierService(HealthRpc):
    name = "notifier"

    db = Database()
