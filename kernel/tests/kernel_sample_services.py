"""nameko services around the sample domain, as a real service would wire them."""

from __future__ import annotations

import sqlalchemy as sa
from kernel_sample import AccountsProjection, handled, open_account, read_email
from upgestao_kernel.nameko_ext import Database, HealthRpc, reliable_handler, rpc

# Test switches and probes for the consumer (same process as the test):
# CALLS when a delivery starts, DONE when it finished without error.
CALLS: list[str] = []
DONE: list[str] = []
BEHAVIOUR = {"fail": False}


class LedgerService(HealthRpc):
    name = "ledger"
    db = Database(projections=lambda: [AccountsProjection()], personal_data=True)

    @rpc
    def open_account(self, account_id: str, email: str) -> dict:
        with self.db.unit_of_work() as uow:
            account = open_account(uow, account_id, email)
        return {"id": account.id, "version": account.version}

    @rpc
    def read_email(self, account_id: str) -> str:
        with self.db.unit_of_work() as uow:
            return read_email(uow, account_id)


class TallyService(HealthRpc):
    """Consumes ledger events; records each one it handled in ``handled``."""

    name = "tally"
    db = Database()

    @reliable_handler("ledger", ["ledger.#"])
    def on_ledger_event(self, event) -> None:
        CALLS.append(event.event_id)
        if BEHAVIOUR["fail"]:
            raise RuntimeError("downstream unavailable")
        with self.db.handling(event) as uow:
            if uow is not None:  # None: a duplicate delivery, already handled
                uow.conn.execute(handled.insert().values(event_id=event.event_id))
        DONE.append(event.event_id)

    @rpc
    def handled(self) -> list[str]:
        with self.db.engine.connect() as conn:
            return [r.event_id for r in conn.execute(sa.select(handled.c.event_id))]
