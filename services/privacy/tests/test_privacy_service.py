"""Service test: the privacy service starts on real RabbitMQ and PostgreSQL."""

from upgestao_privacy.service import PrivacyService


def test_health_answers_over_rpc(run_service):
    proxy = run_service(PrivacyService, "upgestao_privacy:migrations")
    assert proxy.health() == {"service": "privacy", "status": "ok", "database": "ok"}
    assert proxy.ping() == {"service": "privacy"}
