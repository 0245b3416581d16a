"""Identity's sharing RPCs on the running service (RabbitMQ, PostgreSQL, the migrations), issue 15: only the
integrations service's broker user is answered; a customer's e-mail, name and phone are given only to it, for
an active customer, and every opening is audited as a ``share`` with the integration as recipient (R4.1, R4.2)."""

from __future__ import annotations

import uuid

import pytest
from upgestao_kernel.audit import AUDIT_EXCHANGE, records_in
from upgestao_kernel.errors import ServiceError

RECIPIENT = "integration:int_0123456789abcdef0123456789"
PURPOSE = "integration delivery: message.created"


def error_of(call, *args) -> ServiceError:
    with pytest.raises(ServiceError) as refused:
        call(*args)
    return refused.value


def audit_records(identity, **match) -> list[dict]:
    """Every audit record in the outbox (a batch's too), whose keys equal ``match``."""
    return [r for row in identity.outbox(exchange=AUDIT_EXCHANGE) for r in records_in(row.body)
            if all(r.get(k) == v for k, v in match.items())]


def test_share_subjects_gives_active_customers_fields_to_integrations_alone_and_audits_each(identity):
    admin = identity.admin()
    dora = admin.create_customer({"full_name": "Dora Dias", "email": "dora@example.com",
                                  "phone": "+55 21 98888-0002"})
    edu = admin.create_customer({"full_name": "Edu Elias", "phone": "+55 11 97777-0003"})  # no e-mail
    blocked = admin.create_customer({"full_name": "Bia Bloqueada", "email": "bia@example.com"})
    anonymous = admin.create_customer({"full_name": "Ana Anônima", "email": "ana@example.com"})
    gone = admin.create_customer({"full_name": "Gil Gone", "email": "gil@example.com"})
    staff = identity.add_user(1)
    privacy = identity.as_service("privacy")
    privacy.erase_subject(blocked["id"], "blocking", "req-b")
    privacy.erase_subject(anonymous["id"], "anonymisation", "req-a")
    privacy.erase_subject(gone["id"], "deletion", "req-g")
    unknown = str(uuid.uuid4())
    ids = [dora["id"], edu["id"], blocked["id"], anonymous["id"], gone["id"], staff["id"], unknown, "not-a-uuid"]

    integrations = identity.as_service("integrations")
    answer = integrations.share_subjects(ids, ["email", "name", "phone"], RECIPIENT, PURPOSE)
    assert answer == {"subjects": {
        dora["id"]: {"email": "dora@example.com", "name": "Dora Dias", "phone": "+5521988880002"},
        edu["id"]: {"email": None, "name": "Edu Elias", "phone": "+5511977770003"},
        blocked["id"]: None, anonymous["id"]: None, gone["id"]: None, staff["id"]: None, unknown: None,
        "not-a-uuid": None}}
    # only the fields asked are keys
    assert integrations.share_subjects([dora["id"]], ["name"], RECIPIENT, PURPOSE) == {
        "subjects": {dora["id"]: {"name": "Dora Dias"}}}

    shares = audit_records(identity, action="share")
    assert sorted((r["subject_id"], tuple(r["fields"])) for r in shares) == sorted([
        (dora["id"], ("email", "full_name", "phone")), (edu["id"], ("full_name", "phone")),
        (dora["id"], ("full_name",))])
    for record in shares:
        assert (record["resource_type"], record["resource_id"], record["recipient"], record["purpose"],
                record["outcome"]) == ("customer", record["subject_id"], RECIPIENT, PURPOSE, "success")
        assert not {"dora@example.com", "Dora Dias", "Edu Elias"} & {str(v) for v in record.values()}


def test_the_sharing_rpcs_refuse_every_other_caller_audited(identity):
    admin = identity.admin()
    dora = admin.create_customer({"full_name": "Dora Dias", "email": "dora@example.com"})
    before = len(audit_records(identity, outcome="denied"))
    callers = [identity.as_service("privacy"), identity.as_service("messaging"), identity.as_service("notifier"),
               identity.as_service("gateway"), admin]
    for caller in callers:
        problem = error_of(caller.share_subjects, [dora["id"]], ["email"], RECIPIENT, PURPOSE)
        assert (problem.status, problem.slug) == (403, "forbidden")
        problem = error_of(caller.staff_ids, "integrations.manage")
        assert (problem.status, problem.slug) == (403, "forbidden")
    denied = audit_records(identity, outcome="denied")
    assert len(denied) - before == 2 * len(callers)
    assert audit_records(identity, action="share", outcome="success") == []


def test_share_subjects_checks_its_arguments_naming_them(identity):
    integrations = identity.as_service("integrations")
    some = str(uuid.uuid4())
    cases = [
        (([some], ["email", "address"], RECIPIENT, PURPOSE), "fields"),
        (([some], ["conversations"], RECIPIENT, PURPOSE), "fields"),
        (([some], [], RECIPIENT, PURPOSE), "fields"),
        (([some], ["email"], "webhook:x", PURPOSE), "recipient"),
        (([some], ["email"], "integration:bad id", PURPOSE), "recipient"),
        (([some], ["email"], RECIPIENT, ""), "purpose"),
        (([str(uuid.uuid4()) for _ in range(201)], ["email"], RECIPIENT, PURPOSE), "subject_ids"),
        (([1, 2], ["email"], RECIPIENT, PURPOSE), "subject_ids"),
        ((some, ["email"], RECIPIENT, PURPOSE), "subject_ids"),
    ]
    for args, field in cases:
        problem = error_of(integrations.share_subjects, *args)
        assert problem.status == 422, args
        assert [e["field"] for e in problem.extensions["errors"]] == [field], args


def test_staff_ids_and_contacts_answer_integrations(identity):
    first_admin = identity.admin_id
    other_admin = identity.add_user(2, role="admin")
    identity.add_user(3)  # an attendant: no integrations.manage
    gone_admin = identity.add_user(4, role="admin")
    identity.admin().deactivate_user(gone_admin["id"])
    integrations = identity.as_service("integrations")
    assert sorted(integrations.staff_ids("integrations.manage")["ids"]) == sorted([first_admin, other_admin["id"]])
    assert error_of(integrations.staff_ids, "no.such.permission").status == 422
    contacts = integrations.contacts([other_admin["id"]])["items"]
    assert contacts[other_admin["id"]]["to"] == other_admin["email"]
    assert audit_records(identity, action="read", purpose="notification", subject_id=other_admin["id"])
