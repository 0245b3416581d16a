"""Domain errors at the edge: the rpc entrypoint answers a refusal as the problem of its row.

The domain raises its own exceptions, without statuses; one table (the kernel's rows plus each
service's) turns them into ServiceErrors at the ``rpc`` entrypoint. The kernel's own row: an
event stream changed by a concurrent request (``ConcurrencyError``) is a 409 ``conflict``, not
a 500 -- proved with two deposits to one account colliding through a real service.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import eventlet
import pytest
from eventlet.event import Event
from kernel_sample import Account, AccountsProjection, create_sample_tables, open_account
from upgestao_kernel.errors import DomainError, Problems, ServiceError, problem
from upgestao_kernel.eventstore import ConcurrencyError
from upgestao_kernel.nameko_ext import Database, rpc
from upgestao_kernel.nameko_ext.rpc import CONCURRENT_CHANGE, PROBLEMS, register_problems, translating


class Overdrawn(DomainError):
    def __init__(self, missing: int) -> None:
        super().__init__(f"{missing} short")
        self.missing = missing


class DeeplyOverdrawn(Overdrawn):
    pass


class Unmapped(DomainError):
    pass


register_problems({Overdrawn: problem("insufficient-funds", 422, lambda exc: f"{exc.missing} more needed.",
                                      field="amount")})


def test_a_row_answers_its_class_and_subclasses():
    table = Problems({Overdrawn: problem("insufficient-funds", 422, "Not enough.")})
    answer = table.answer(DeeplyOverdrawn(3))
    assert isinstance(answer, ServiceError)
    assert answer.args == ("insufficient-funds", "Not enough.", "422", "{}")
    assert table.answer(Unmapped()) is None and table.answer(ValueError()) is None
    assert Overdrawn in table and list(table) == [Overdrawn]
    with pytest.raises(TypeError):  # an answer needs no row
        table.register({ServiceError: problem("x", 400, "x")})


def test_the_kernel_answers_a_concurrent_change_as_a_409_conflict():
    answer = PROBLEMS.answer(ConcurrencyError("account-a1", 1, 2))
    assert answer.args == ("conflict", "This was changed by someone else meanwhile; reload and retry.", "409", "{}")
    assert answer.detail == CONCURRENT_CHANGE


class Teller:
    @translating
    def withdraw(self, amount: int, *, why: str = "") -> int:
        if amount > 10:
            raise DeeplyOverdrawn(amount - 10)
        if amount == 7:
            raise ConcurrencyError("account-a1", 3, 4)
        if amount == 5:
            raise Unmapped("nobody maps this")
        if amount < 0:
            raise ServiceError("validation-error", "as it was", 422)
        return 10 - amount


def test_a_method_answers_its_refusals_as_problems_and_leaves_the_rest_alone():
    teller = Teller()
    assert teller.withdraw(4) == 6
    with pytest.raises(ServiceError) as refused:
        teller.withdraw(13)
    assert refused.value.args == ("insufficient-funds", "3 more needed.", "422", '{"field": "amount"}')
    assert isinstance(refused.value.__cause__, DeeplyOverdrawn)  # the log keeps what the domain said
    with pytest.raises(ServiceError) as conflict:
        teller.withdraw(7)
    assert (conflict.value.slug, conflict.value.status) == ("conflict", 409)
    with pytest.raises(Unmapped):  # an unmapped refusal is a bug: it stays itself (a 500)
        teller.withdraw(5)
    with pytest.raises(ServiceError) as answered:
        teller.withdraw(-1)
    assert answered.value.args == ("validation-error", "as it was", "422", "{}")
    # nameko checks a request's arguments against the signature
    assert list(inspect.signature(Teller.withdraw).parameters) == ["self", "amount", "why"]


# -- through a real service: two deposits to one account collide -------------------------------

LOADED, RESUME = [Event()], [Event()]


class ClashingLedger:
    name = "clashing_ledger"
    db = Database(projections=lambda: [AccountsProjection()], personal_data=True)

    @rpc
    def open(self, account_id: str) -> None:
        with self.db.unit_of_work() as uow:
            open_account(uow, account_id, "ana@example.com")

    @rpc
    def deposit(self, account_id: str, amount: int, hold: bool = False) -> int:
        with self.db.unit_of_work() as uow:
            account = uow.load(Account, account_id)
            if hold:  # read the stream, then let another request change it before writing
                LOADED[0].send()
                RESUME[0].wait()
            account.deposit(amount)
            uow.save(account)
        return account.balance

    @rpc
    def refuse(self) -> None:
        raise DeeplyOverdrawn(2)


@pytest.fixture
def ledger(run_service) -> Iterator:
    LOADED[0], RESUME[0] = Event(), Event()
    yield run_service(ClashingLedger, create_sample_tables)
    if not RESUME[0].ready():
        RESUME[0].send()


def test_two_concurrent_deposits_to_one_account_answer_409_conflict_to_the_loser(ledger):
    ledger.open("a1")
    first = ledger.deposit.call_async("a1", 5, hold=True)
    with eventlet.Timeout(10):
        LOADED[0].wait()  # the first request read the account at version 1 ...
    assert ledger.deposit("a1", 7) == 7  # ... and this one wrote version 2 meanwhile
    RESUME[0].send()
    with pytest.raises(ServiceError) as lost:
        first.result()
    assert lost.value.args == ("conflict", CONCURRENT_CHANGE, "409", "{}")
    assert ledger.deposit("a1", 5) == 12  # reloaded and retried: it goes through


def test_a_refusal_reaches_the_caller_as_its_problem(ledger):
    with pytest.raises(ServiceError) as refused:
        ledger.refuse()
    assert refused.value.args == ("insufficient-funds", "2 more needed.", "422", '{"field": "amount"}')


def test_the_answered_error_line_names_the_domain_refusal():
    import logging
    import sys

    from upgestao_kernel.nameko_ext.rpc import AnsweredErrors

    try:
        Teller().withdraw(12)
    except ServiceError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("nameko.containers", logging.WARNING, __file__, 1,
                               "(expected) error handling worker %s: %s", (None, "x"), exc_info)
    logger = logging.getLogger("nameko.containers")
    saved = logger.level
    logger.setLevel(logging.INFO)
    try:
        assert AnsweredErrors().filter(record)
    finally:
        logger.setLevel(saved)
    assert (record.msg, record.levelname, record.error_type, record.status, record.refusal) == (
        "rpc.answered_error", "INFO", "insufficient-funds", 422, "DeeplyOverdrawn")
    assert record.exc_info is None  # an answer, not a failure: no traceback
