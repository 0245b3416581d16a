"""nameko entrypoints of the identity service (thin: no domain logic here)."""

from upgestao_kernel.nameko_ext import Database, HealthRpc


class IdentityService(HealthRpc):
    name = "identity"

    db = Database()
