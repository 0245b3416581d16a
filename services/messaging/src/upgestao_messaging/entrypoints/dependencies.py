"""Messaging's nameko dependencies: what its workers need, built once per process.

:class:`RpcDirectory` is the :class:`~..adapters.ports.Directory` port over identity's ``directory`` RPC
(served to messaging's broker user only; ids, kinds, roles and states, no personal data), with a
deadline: identity away is a 503, never a guess. :class:`MessagingRuntime` holds the settings and the
search key's hasher. :class:`SnoozeTimer` is nameko's timer run by the system (it reopens snoozed
conversations whose time has come).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import eventlet
from nameko.extensions import DependencyProvider
from nameko.timer import Timer
from upgestao_kernel.config import load_settings
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.logging import get_logger

from ..adapters.ports import Person
from ..domain.search import TermHasher
from ..settings import MessagingSettings, load_messaging_settings

log = get_logger(__name__)

DIRECTORY_TIMEOUT_S = 5.0
MAX_LOOKUP = 500


class RpcDirectory:
    """``identity.directory(ids)`` through the worker's RPC proxy."""

    def __init__(self, identity: Any, timeout_s: float = DIRECTORY_TIMEOUT_S) -> None:
        self._identity = identity
        self._timeout_s = timeout_s

    def lookup(self, ids: Sequence[str]) -> dict[str, Person]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        if len(wanted) > MAX_LOOKUP:
            raise ServiceError("validation-error", "Too many people at once.", 422,
                               {"errors": [{"field": "member_ids", "message": f"at most {MAX_LOOKUP}"}]})
        try:
            with eventlet.Timeout(self._timeout_s):
                answer = self._identity.directory(wanted)
        except (Exception, eventlet.Timeout) as exc:  # noqa: BLE001 - identity away, too slow, or refusing us
            # (a refusal of identity's is not the caller's to see: whatever it says, people cannot be checked)
            log.warning("directory_unavailable", error=type(exc).__name__)
            raise ServiceError("service-unavailable", "People cannot be checked right now.", 503,
                               {"retry_after": 5}) from None
        items = answer.get("items") or {}
        return {pid: Person(id=pid, kind=str(item.get("kind")), role=item.get("role"), active=bool(item.get("active")))
                for pid, item in items.items() if pid in wanted and isinstance(item, dict)}


class MessagingRuntime(DependencyProvider):
    settings: MessagingSettings
    hasher: TermHasher

    def setup(self) -> None:
        self.settings = load_messaging_settings(load_settings(self.container.service_name))
        self.hasher = TermHasher(self.settings.search_key)

    def get_dependency(self, worker_ctx) -> MessagingRuntime:
        return self


class SnoozeTimer(Timer):
    """nameko's timer, every ``MESSAGING_SNOOZE_SWEEP_INTERVAL_S``; its work is the system's (no caller)."""

    acts_as_system = True

    def setup(self) -> None:
        self.interval = load_messaging_settings(load_settings(self.container.service_name)).snooze_sweep_interval_s
        super().setup()


snooze_timer = SnoozeTimer.decorator
