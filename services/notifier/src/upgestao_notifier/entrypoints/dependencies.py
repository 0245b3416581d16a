"""The notifier's nameko dependencies: what its workers need, built once per process.

:class:`NotifierRuntime` holds the settings, the SMTP connections (reused across messages), the
templates, the sink lookup and a green pool that sends over the connections side by side.
:class:`RpcNoticeSource` asks an owning service for a notice over nameko RPC, as the notifier's broker
user (the owner checks it), with a deadline. :class:`SweepTimer` is nameko's timer run by the system.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

import eventlet
from eventlet.greenpool import GreenPool
from nameko.extensions import DependencyProvider
from nameko.timer import Timer
from upgestao_kernel.config import load_settings
from upgestao_kernel.errors import ServiceError

from ..adapters.ports import Notice, NoticeGone, NotifierUnitOfWork, Recipient
from ..adapters.sink import accepted
from ..adapters.smtp import SmtpMailer, parse_smtp_url
from ..adapters.templates import Templates
from ..domain.kinds import locale_of
from ..service_layer.dispatch import Dispatcher
from ..settings import NotifierSettings, load_notifier_settings

NOTICE_TIMEOUT_S = 10.0


class RpcNoticeSource:
    """``<owner>.notice(id, recipient_id=, cursor=)`` through the worker's RPC proxies, by owner."""

    def __init__(self, proxies: Mapping[str, Any], timeout_s: float = NOTICE_TIMEOUT_S) -> None:
        self._proxies = proxies
        self._timeout_s = timeout_s

    def fetch(self, source: str, notice_id: str, *, recipient_id: str | None = None,
              cursor: str | None = None) -> Notice:
        proxy = self._proxies[source]
        try:
            with eventlet.Timeout(self._timeout_s):
                answer = proxy.notice(notice_id, recipient_id=recipient_id, cursor=cursor)
        except ServiceError as exc:
            if exc.status == 404:
                raise NoticeGone(notice_id) from None
            raise
        return notice_of(answer)


def notice_of(answer: Mapping[str, Any]) -> Notice:
    """The owner's answer as a :class:`Notice` (a malformed one raises: the event is retried, then parked)."""
    recipients = [Recipient(id=str(r["id"]), to=str(r["to"]), locale=locale_of(r.get("locale")),
                            name=r.get("name") or None, vars=dict(r.get("vars") or {}))
                  for r in answer["recipients"] if r.get("to")]
    return Notice(id=str(answer["id"]), kind=str(answer["kind"]), campaign_id=answer.get("campaign_id"),
                  data=dict(answer.get("data") or {}), recipients=recipients, next=answer.get("next"))


class NotifierRuntime(DependencyProvider):
    settings: NotifierSettings

    def setup(self) -> None:
        self.settings = load_notifier_settings(load_settings(self.container.service_name))
        s = self.settings
        self.mailer = SmtpMailer(parse_smtp_url(s.smtp_url, timeout_s=s.smtp_timeout_s), pool_size=s.smtp_connections)
        self.templates = Templates()
        self.pool = GreenPool(s.smtp_connections)
        self.lookup = partial(accepted, s.accepted_lookup_dir) if s.accepted_lookup_dir else None

    def stop(self) -> None:
        self.mailer.close()

    def dispatcher(self, unit_of_work: Callable[[], NotifierUnitOfWork], notices: RpcNoticeSource) -> Dispatcher:
        return Dispatcher(unit_of_work=unit_of_work, notices=notices, mailer=self.mailer, renderer=self.templates,
                          settings=self.settings, now=lambda: datetime.now(UTC), accepted=self.lookup,
                          concurrently=self.pool.imap)

    def get_dependency(self, worker_ctx) -> NotifierRuntime:
        return self


class SweepTimer(Timer):
    """nameko's timer, every ``NOTIFIER_SWEEP_INTERVAL_S``; its work is the system's (no caller)."""

    acts_as_system = True

    def setup(self) -> None:
        self.interval = load_notifier_settings(load_settings(self.container.service_name)).sweep_interval_s
        super().setup()


sweep_timer = SweepTimer.decorator
