"""Webhook messages for admins (``integrations.manage``): list them with their attempts, resend one, recover
everything that failed since a time (a background job with progress, resumed after a restart)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from upgestao_kernel.errors import conflict, invalid_field, not_found

from ..domain.messages import RESENDABLE, STATUSES, MessageRefused
from .access import PermissionsOf, check_limit, decode_cursor, encode_cursor, iso, managed, text_id
from .delivery import _snapshot

RECOVER_PAGE = 100


def attempt_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"number": row["number"], "started_at": iso(row["started_at"]), "finished_at": iso(row["finished_at"]),
            "status_code": row["status_code"], "outcome": row["outcome"], "duration_ms": row["duration_ms"],
            "error": row["error"]}


def message_view(row: Mapping[str, Any], attempts: list[Mapping[str, Any]]) -> dict[str, Any]:
    return {"id": row["id"], "integration_id": row["integration_id"], "event_type": row["event_type"],
            "event_id": row["event_id"], "status": row["status"], "created_at": iso(row["created_at"]),
            "next_attempt_at": iso(row["next_attempt_at"]), "attempts": [attempt_view(a) for a in attempts]}


def recovery_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "integration_id": row["integration_id"], "since": iso(row["since"]),
            "status": row["status"], "total": row["total"], "queued": row["queued"],
            "created_at": iso(row["created_at"]), "completed_at": iso(row["completed_at"])}


class Messages:
    def __init__(self, unit_of_work: Callable[[], Any], permissions_of: PermissionsOf, *,
                 now: Callable[[], datetime], spawn: Callable[[Callable[[], None]], Any] | None = None,
                 wake: Callable[[], None] = lambda: None) -> None:
        self._unit_of_work = unit_of_work
        self._permissions_of = permissions_of
        self._now = now
        self._spawn = spawn
        self._wake = wake

    def _managed(self, action: str, resource_id: str | None):
        return managed(self._unit_of_work, self._permissions_of, action, resource_id)

    @staticmethod
    def _integration(uow: Any, integration_id: str) -> Mapping[str, Any]:
        row = uow.integrations.get(integration_id)
        if row is None:
            raise not_found("integration")
        return row

    def webhook_messages(self, integration_id: Any, status: Any = None, limit: Any = 50, cursor: Any = None) -> dict:
        text_id("integration", integration_id, "int_")
        if status is not None and status not in STATUSES:
            raise invalid_field("status", f"one of {', '.join(STATUSES)}")
        check_limit(limit)
        after = decode_cursor(cursor)
        with self._managed("list", integration_id) as uow:
            self._integration(uow, integration_id)
            rows = uow.messages.page(integration_id, status, limit + 1, after)
            more = len(rows) > limit
            rows = rows[:limit]
            attempts = uow.messages.attempts([r["id"] for r in rows])
        return {"items": [message_view(r, attempts[r["id"]]) for r in rows],
                "next_cursor": encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None}

    def webhook_message(self, integration_id: Any, message_id: Any) -> dict:
        text_id("integration", integration_id, "int_")
        text_id("message", message_id, "msg_")
        with self._managed("read", integration_id) as uow:
            row = uow.messages.get(message_id)
            if row is None or row["integration_id"] != integration_id:
                raise not_found("message")
            return message_view(row, uow.messages.attempts([message_id])[message_id])

    def resend(self, integration_id: Any, message_id: Any) -> dict:
        text_id("integration", integration_id, "int_")
        text_id("message", message_id, "msg_")
        with self._managed("update", integration_id) as uow:
            row = uow.messages.get(message_id)
            if row is None or row["integration_id"] != integration_id:
                raise not_found("message")
            if row["status"] not in RESENDABLE or (row["status"] == "failed" and row["next_attempt_at"]):
                raise conflict(f"A {row['status']} message is not resent (only a failed, aborted or succeeded one).",
                               status=row["status"])
            message = _snapshot(row)
            try:
                message.requeue("resend")
            except MessageRefused:
                raise conflict("The message moved on meanwhile.") from None
            uow.save(message)
            answer = message_view(uow.messages.get(message_id), uow.messages.attempts([message_id])[message_id])
        self._wake()
        return answer

    def recover(self, integration_id: Any, since: Any) -> dict:
        text_id("integration", integration_id, "int_")
        try:
            moment = datetime.fromisoformat(since) if isinstance(since, str) else None
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise invalid_field("since", "an ISO 8601 time with its offset")
        now = self._now()
        if moment > now:
            raise invalid_field("since", "must not be in the future")
        job = {"id": "rec_" + uuid.uuid4().hex[:26], "integration_id": integration_id, "since": moment,
               "status": "running", "total": 0, "queued": 0, "created_at": now, "completed_at": None}
        with self._managed("update", integration_id) as uow:
            self._integration(uow, integration_id)
            job["total"] = uow.messages.count_failed_since(integration_id, moment)
            uow.recoveries.add(job)
        if self._spawn is not None:
            self._spawn(lambda: self.run_recovery(job["id"]))
        return recovery_view(job)

    def recovery(self, integration_id: Any, job_id: Any) -> dict:
        text_id("integration", integration_id, "int_")
        text_id("recovery", job_id, "rec_")
        with self._managed("read", integration_id) as uow:
            row = uow.recoveries.get(job_id)
        if row is None or row["integration_id"] != integration_id:
            raise not_found("recovery")
        return recovery_view(row)

    def run_recovery(self, job_id: str) -> None:
        """Re-queue, a page per transaction, every message of the job's integration that failed for good since
        its time; progress is stored with each page (a restart resumes: what is queued is no longer failed)."""
        while True:
            with self._unit_of_work() as uow:
                job = uow.recoveries.get(job_id)
                if job is None or job["status"] != "running":
                    return
                rows = uow.messages.failed_since(job["integration_id"], job["since"], None, RECOVER_PAGE)
                for row in rows:
                    message = _snapshot(row)
                    message.requeue("recover")
                    uow.save(message)
                done = not rows or len(rows) < RECOVER_PAGE
                values: dict[str, Any] = {"queued": job["queued"] + len(rows)}
                if done:
                    values.update(status="completed", completed_at=self._now(),
                                  total=max(job["total"], job["queued"] + len(rows)))
                uow.recoveries.update(job_id, **values)
            if rows:
                self._wake()
            if done:
                return

    def resume_recoveries(self) -> int:
        with self._unit_of_work() as uow:
            running = [row["id"] for row in uow.recoveries.running()]
        for job_id in running:
            if self._spawn is not None:
                self._spawn(lambda job_id=job_id: self.run_recovery(job_id))
            else:
                self.run_recovery(job_id)
        return len(running)
