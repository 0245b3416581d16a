"""Service test: the identity service starts on real RabbitMQ and PostgreSQL."""

from upgestao_identity.service import IdentityService
from upgestao_kernel.testing import wait_for


def test_health_answers_over_rpc(run_service):
    proxy = run_service(IdentityService, "upgestao_identity:migrations")
    # "starting" until the built-in roles are defined, then ok
    wait_for(lambda: proxy.health()["status"] == "ok", timeout=15)
    assert proxy.health() == {"service": "identity", "status": "ok", "database": "ok"}
    assert proxy.ping() == {"service": "identity"}
