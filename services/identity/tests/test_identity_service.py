"""Service test: the identity service starts on real RabbitMQ and PostgreSQL."""

from upgestao_identity.service import IdentityService


def test_health_answers_over_rpc(run_service):
    proxy = run_service(IdentityService, "upgestao_identity:migrations")
    assert proxy.health() == {"service": "identity", "status": "ok", "database": "ok"}
    assert proxy.ping() == {"service": "identity"}
