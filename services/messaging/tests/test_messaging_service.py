"""Service test: the messaging service starts on real RabbitMQ and PostgreSQL."""

from upgestao_messaging.service import MessagingService


def test_health_answers_over_rpc(run_service):
    proxy = run_service(MessagingService, "upgestao_messaging:migrations")
    assert proxy.health() == {"service": "messaging", "status": "ok", "database": "ok"}
    assert proxy.ping() == {"service": "messaging"}
