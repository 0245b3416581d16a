"""Declared events: the type string derived once, stored data and published view from the declaration,
aggregates deciding with them, dispatch tables, subscriptions. Pure: no broker, no database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from upgestao_kernel.events import (
    SYSTEM_ACTOR,
    Aggregate,
    DomainEvent,
    EventEnvelope,
    EventHandlers,
    Subscription,
    declared_events,
    published_only,
)


class LedgerEvent(DomainEvent, abstract=True, service="ledgertest"):
    """The sample service's events."""


@dataclass(frozen=True)
class AccountOpened(LedgerEvent, subject="account_id", publishes=("account_id", "fields")):
    fields: Mapping[str, str | None]
    email_index: str


@dataclass(frozen=True)
class MoneyDeposited(LedgerEvent, publishes=True):
    amount: int


@dataclass(frozen=True)
class StatementLinkIssued(LedgerEvent, version=2, subject="account_id",
                          publishes=("account_id", "link", "expires_at"), secret=True):
    link_hash: str
    expires_at: str
    link: str | None = published_only()


@dataclass(frozen=True)
class AccountAudited(LedgerEvent, publishes=False):
    pass


class Account(Aggregate):
    stream_type = "account"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.balance = 0
        self.opened = False

    def when_account_opened(self, fields, email_index) -> None:
        self.opened = True

    def when_money_deposited(self, amount) -> None:
        self.balance += amount


def test_the_type_string_is_derived_from_the_declaration():
    assert AccountOpened.type == "ledgertest.account_opened.v1"
    assert StatementLinkIssued.type == "ledgertest.statement_link_issued.v2"
    assert declared_events()["ledgertest.money_deposited.v1"] is MoneyDeposited
    assert "" not in declared_events() and LedgerEvent.type == ""  # the abstract base is no event


def test_stored_data_and_published_view_follow_the_declaration():
    opened = AccountOpened(fields={"name": "v1:sealed-b", "email": "v1:sealed-a"}, email_index="idx")
    new = opened.new_event("a1")
    assert new.type == "ledgertest.account_opened.v1"
    assert new.data == {"fields": {"name": "v1:sealed-b", "email": "v1:sealed-a"}, "email_index": "idx"}
    # a mapping of sealed values leaves the service as its sorted names, never its values
    assert new.published == {"account_id": "a1", "fields": ["email", "name"]} and new.secret is False

    issued = StatementLinkIssued(link_hash="h", expires_at="2030-01-01", link="https://x/secret").new_event("a1")
    assert issued.data == {"link_hash": "h", "expires_at": "2030-01-01"}  # the link itself is never stored
    assert issued.published == {"account_id": "a1", "link": "https://x/secret", "expires_at": "2030-01-01"}
    assert issued.secret is True

    assert MoneyDeposited(amount=5).new_event("a1").published is None  # the data as it is
    assert AccountAudited().new_event("a1").published is False  # kept inside the service
    assert MoneyDeposited.published_names() == ("amount",) and AccountAudited.published_names() == ()
    assert StatementLinkIssued.stored_names() == ("link_hash", "expires_at")


def test_an_aggregate_decides_with_declared_events_and_replays_them():
    account = Account("a1")
    account.trigger(AccountOpened(fields={"email": "v1:x"}, email_index="idx"))
    account.trigger(MoneyDeposited(amount=7))
    assert account.opened and account.balance == 7
    pending = account.collect()
    assert [e.type for e in pending] == ["ledgertest.account_opened.v1", "ledgertest.money_deposited.v1"]
    history = [_envelope(e.type, e.data, n) for n, e in enumerate(pending, start=1)]
    replayed = Account.replay("a1", history)
    assert (replayed.version, replayed.balance, replayed.opened) == (2, 7, True)
    # the string form keeps working for callers that have not declared their events
    account.trigger("ledgertest.money_deposited.v1", amount=3)
    assert account.balance == 10
    with pytest.raises(TypeError):
        account.trigger(MoneyDeposited(amount=1), published=False)


def _envelope(type: str, data: Mapping, version: int = 1) -> EventEnvelope:
    return EventEnvelope(event_id=f"e{version}", stream_id="account-a1", version=version, type=type,
                         occurred_at=datetime.now(UTC), actor=SYSTEM_ACTOR, correlation_id=None, causation_id=None,
                         data=data)


def test_a_dispatch_table_calls_the_handler_of_the_declared_type_with_the_decoded_event():
    class Balances:
        on = EventHandlers()

        def __init__(self) -> None:
            self.seen: list = []

        def apply(self, conn, envelope) -> bool:
            return self.on.dispatch(self, envelope, conn)

        @on(MoneyDeposited)
        def _deposited(self, conn, envelope, event: MoneyDeposited) -> None:
            self.seen.append((conn, envelope.version, event))

    balances = Balances()
    assert balances.apply("conn", _envelope(MoneyDeposited.type, {"amount": 4}, 3)) is True
    assert balances.seen == [("conn", 3, MoneyDeposited(amount=4))]
    assert balances.apply("conn", _envelope(AccountAudited.type, {})) is False  # not this table's
    assert Balances.on.event_types == (MoneyDeposited.type,)
    with pytest.raises(TypeError, match="two handlers"):
        Balances.on(MoneyDeposited)(lambda *a: None)
    with pytest.raises(TypeError):  # a stored key the declaration does not know is a bug, loudly
        balances.apply("conn", _envelope(MoneyDeposited.type, {"amount": 1, "currency": "BRL"}))


def test_a_declaration_is_checked_when_the_class_is_made():
    with pytest.raises(TypeError, match="declared twice"):
        type("MoneyDeposited", (LedgerEvent,), {"__module__": "elsewhere"})
    with pytest.raises(TypeError, match="subject"):
        type("FundsFrozen", (LedgerEvent,), {"subject": None, "publishes": ("amount",)},
             subject="account_id")
    with pytest.raises(TypeError, match="not <service>"):
        type("FundsMoved", (DomainEvent,), {})  # no service


def test_a_subscription_names_event_types():
    subscription = Subscription(service="audit", handler="Ingest", events=(MoneyDeposited.type,),
                                via="queue audit.ledger")
    assert subscription.events == ("ledgertest.money_deposited.v1",)
    with pytest.raises(ValueError):
        Subscription(service="audit", handler="Ingest", events=("money deposited",), via="queue q")
    with pytest.raises(ValueError):
        Subscription(service="audit", handler="Ingest", events=(), via="queue q")
