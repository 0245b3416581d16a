"""Service test: the notifier service starts on real RabbitMQ and PostgreSQL."""

from upgestao_notifier.service import NotifierService


def test_health_answers_over_rpc(run_service):
    proxy = run_service(NotifierService, "upgestao_notifier:migrations")
    assert proxy.health() == {"service": "notifier", "status": "ok", "database": "ok"}
    assert proxy.ping() == {"service": "notifier"}
