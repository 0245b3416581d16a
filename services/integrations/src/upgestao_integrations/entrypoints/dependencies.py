"""The integrations service's adapters to the data's owners, over nameko RPC as the ``integrations`` broker
user (the owners answer that caller only and audit each opening as a share with the integration as
recipient)."""

from __future__ import annotations

from typing import Any

import eventlet
import eventlet.semaphore

OWNER_TIMEOUT_S = 10.0


class RpcOwners:
    """``identity.share_subjects`` and ``messaging.share_messages`` through a cluster proxy, with a deadline."""

    def __init__(self, cluster: Any, timeout_s: float = OWNER_TIMEOUT_S) -> None:
        self._cluster = cluster
        self._timeout_s = timeout_s
        # A call that failed (a timeout, the broker gone) may still be answered later: that reply -- personal
        # values -- would wait in this proxy's reply queue, which is drained only while a call waits. The
        # dispatcher then closes the proxy (its exclusive, auto-delete reply queue goes with it) and opens another.
        self.broken = False
        # One call at a time: the proxy's reply queue is read by the calling greenlet, and two greenlets waiting
        # on it at once fail (RuntimeError, a second simultaneous read). The dispatcher's batches open their data
        # side by side; the wait for the proxy counts against the call's deadline.
        self._one_at_a_time = eventlet.semaphore.Semaphore(1)

    def _call(self, method: Any, *args: Any) -> dict:
        try:
            with eventlet.Timeout(self._timeout_s), self._one_at_a_time:
                return method(*args)
        except BaseException:
            self.broken = True
            raise

    def share_subjects(self, subject_ids: list[str], fields: list[str], recipient: str, purpose: str) -> dict:
        return self._call(self._cluster.identity.share_subjects, subject_ids, fields, recipient, purpose)

    def share_messages(self, message_ids: list[str], include_body: bool, recipient: str, purpose: str) -> dict:
        return self._call(self._cluster.messaging.share_messages, message_ids, include_body, recipient, purpose)
