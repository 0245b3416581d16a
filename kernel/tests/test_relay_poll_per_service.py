"""The relay's poll interval: the operator's UPGESTAO_RELAY_POLL_MS, else the service's own (messaging polls
faster: its events are pushed to people waiting on a socket), else the kernel's 50 ms."""

from __future__ import annotations

from upgestao_kernel.cli import ServiceDefinition, relay_poll_ms
from upgestao_kernel.config import load_settings

PLAIN = ServiceDefinition(name="ledger", service_class="x:Y", migrations="unused")
EAGER = ServiceDefinition(name="ledger", service_class="x:Y", migrations="unused", relay_poll_ms=10)


def test_the_kernels_interval_by_default():
    assert relay_poll_ms(PLAIN, load_settings("ledger", {}), {}) == 50


def test_a_service_may_poll_more_often():
    assert relay_poll_ms(EAGER, load_settings("ledger", {}), {}) == 10


def test_the_operators_setting_wins():
    environ = {"UPGESTAO_RELAY_POLL_MS": "200"}
    assert relay_poll_ms(EAGER, load_settings("ledger", environ), environ) == 200
    assert relay_poll_ms(PLAIN, load_settings("ledger", environ), environ) == 200


def test_messaging_polls_every_10_ms():
    from upgestao_messaging.definition import DEFINITION

    assert relay_poll_ms(DEFINITION, load_settings("messaging", {}), {}) == 10
