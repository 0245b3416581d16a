"""A tiny sample domain the kernel tests drive: customer accounts.

It is shaped the way services are meant to be: an event-sourced aggregate
with personal fields sealed by the vault, a projection, and a consumer.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from upgestao_kernel.db import create_engine
from upgestao_kernel.events import Aggregate, EventEnvelope
from upgestao_kernel.schema import kernel_metadata
from upgestao_kernel.unit_of_work import UnitOfWork

sample_metadata = sa.MetaData()

accounts = sa.Table(
    "accounts",
    sample_metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("email", sa.Text, nullable=True),  # vault ciphertext
    sa.Column("email_index", sa.String(64), nullable=True, index=True),
    sa.Column("balance", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)

handled = sa.Table(  # what the sample consumer did, duplicates would show here
    "handled",
    sample_metadata,
    sa.Column("n", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False),
)


class Account(Aggregate):
    stream_type = "account"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.balance = 0
        self.opened = False

    @classmethod
    def open(cls, id: str, email_ciphertext: str, email_index: str) -> Account:
        account = cls(id)
        account.trigger("ledger.account_opened.v1", published={"account_id": id, "fields": ["email"]},
                        email=email_ciphertext, email_index=email_index)
        return account

    def deposit(self, amount: int) -> None:
        if amount <= 0:
            raise ValueError("deposit must be positive")
        self.trigger("ledger.money_deposited.v1", amount=amount)

    def when_account_opened(self, email: str, email_index: str) -> None:
        self.opened = True

    def when_money_deposited(self, amount: int) -> None:
        self.balance += amount


class AccountsProjection:
    name = "accounts"
    tables = (accounts,)

    def apply(self, conn: Connection, event: EventEnvelope) -> None:
        account_id = event.stream_id.removeprefix("account-")
        if event.type == "ledger.account_opened.v1":
            conn.execute(accounts.insert().values(
                id=account_id, email=event.data["email"], email_index=event.data["email_index"],
                balance=0, version=event.version,
            ))
        elif event.type == "ledger.money_deposited.v1":
            conn.execute(accounts.update().where(accounts.c.id == account_id).values(
                balance=accounts.c.balance + event.data["amount"], version=event.version,
            ))


def open_account(uow: UnitOfWork, account_id: str, email: str) -> Account:
    """Service-layer use case: seal the e-mail (audited), then record the event."""
    sealed = uow.personal.seal(subject_id=account_id, resource_type="account", resource_id=account_id,
                               values={"email": email}, purpose="account_opening")
    account = Account.open(account_id, sealed["email"], uow.personal.blind_index("email", email))
    uow.save(account)
    return account


def read_email(uow: UnitOfWork, account_id: str) -> str:
    row = uow.conn.execute(sa.select(accounts).where(accounts.c.id == account_id)).one()
    opened = uow.personal.open(subject_id=account_id, resource_type="account", resource_id=account_id,
                               sealed={"email": row.email}, purpose="support")
    return opened["email"]


def create_sample_tables(url: str) -> None:
    """Kernel tables and the sample's read models (tests skip Alembic here)."""
    engine = create_engine(url)
    kernel_metadata.create_all(engine)
    sample_metadata.create_all(engine)
    engine.dispose()
