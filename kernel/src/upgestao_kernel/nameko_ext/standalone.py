"""nameko's standalone RPC proxy names its reply queue after the service that uses it.

A standalone proxy (``ClusterRpcProxy``, ``ServiceRpcProxy``: the gateway's identity client, privacy's
role lookup) declares its reply queue as ``rpc.reply-standalone_rpc_proxy-<uuid>`` in every process,
so a broker permission allowing one service its standalone replies would allow it every service's.
Here the proxy's stand-in container takes the name of the service whose broker user its ``AMQP_URI``
logs in as (:func:`~upgestao_kernel.broker_identity.service_of_user`), so its replies arrive in
``rpc.reply-<service>-<uuid>``, the name the service's own reply queues have and the only one its
permissions let it read (:mod:`upgestao_kernel.broker_permissions`). A proxy logged in as anyone else
(a test's administrator, an operator) keeps nameko's name.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.standalone.rpc import StandaloneProxyBase

from ..broker_identity import service_of_user

_PATCHED = "_upgestao_names_reply_queue"


def proxy_service_name(config: dict) -> str | None:
    """The service whose broker user ``config``'s ``AMQP_URI`` logs in as, if any."""
    username = urlsplit(str(config.get(AMQP_URI_CONFIG_KEY) or "")).username
    return service_of_user(unquote(username)) if username else None


def install_reply_queue_naming() -> None:
    """Idempotent: a standalone proxy's reply queue is ``rpc.reply-<its service>-<uuid>``."""
    container_cls = StandaloneProxyBase.ServiceContainer
    if getattr(container_cls.__init__, _PATCHED, False):
        return
    original = container_cls.__init__

    def __init__(self, config) -> None:
        original(self, config)
        service = proxy_service_name(config)
        if service is not None:
            self.service_name = service

    setattr(__init__, _PATCHED, True)
    container_cls.__init__ = __init__


install_reply_queue_naming()
