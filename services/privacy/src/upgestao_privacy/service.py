"""nameko entrypoints of the privacy service (thin: no domain logic here)."""

from upgestao_kernel.nameko_ext import Database, HealthRpc


class PrivacyService(HealthRpc):
    name = "privacy"

    db = Database()
