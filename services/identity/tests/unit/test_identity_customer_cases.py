"""Customer use cases on the fake unit of work: register, get, search and list, update."""

from __future__ import annotations

from upgestao_identity.domain.customers import Customer
from upgestao_identity.service_layer import customers

CUSTOMER = {"full_name": "Carla Dias", "email": "carla@example.com", "phone": "+55 21 99876-5432",
            "birth_date": "2001-02-03"}


def register(fake, data=None, **as_whom):
    return fake.run(customers.register, dict(data or CUSTOMER), today=fake.today, **as_whom)


def test_register_seals_the_customer_and_answers_its_record(fake):
    attendant = fake.add_user(1)
    mark = fake.mark()
    shown = register(fake, actor=attendant, role="attendant")
    assert (shown["full_name"], shown["email"], shown["phone"]) == ("Carla Dias", "carla@example.com",
                                                                    "+5521998765432")
    assert fake.events_since(mark) == ["identity.customer_registered.v1"]
    assert fake.published_since(mark, "identity.customer_registered.v1")[0]["data"] == {
        "customer_id": shown["id"], "fields": ["birth_date", "email", "full_name", "phone"]}
    assert [(a["action"], a["resource_type"], a["purpose"]) for a in fake.audit_since(mark)] == [
        ("create", "customer", "customer registration"), ("read", "customer", "customer registration")]
    with fake.uow() as uow:
        customer = uow.load(Customer, shown["id"])
    assert customer.registered and customer.fields == {"birth_date", "email", "full_name", "phone"}


def test_register_refuses_duplicates_and_a_customer_without_a_way_to_reach_them(fake):
    first = register(fake)
    mark = fake.mark()
    same_email = fake.refused(lambda: register(fake, {"full_name": "X", "email": "CARLA@example.com"}))
    assert (same_email.status, same_email.extensions) == (409, {"field": "email", "existing_id": first["id"]})
    same_phone = fake.refused(lambda: register(fake, {"full_name": "X", "phone": "(21) 99876-5432"}))
    assert same_phone.extensions == {"field": "phone", "existing_id": first["id"]}
    unreachable = fake.refused(lambda: register(fake, {"full_name": "X"}))
    assert {e["field"] for e in unreachable.extensions["errors"]} == {"email", "phone"}
    assert fake.events_since(mark) == []
    denied = fake.refused(lambda: register(fake, {"full_name": "X", "email": "x@example.com"}, actor="u",
                                           role="nobody"))
    assert denied.extensions == {"permission": "customers.create"}
    assert fake.audit_since(mark)[-1]["outcome"] == "denied"


def test_get_customer(fake):
    created = register(fake)
    mark = fake.mark()
    shown = fake.run(customers.get, created["id"])
    assert shown == created | {"updated_at": shown["updated_at"]}
    (audit,) = fake.audit_since(mark)
    assert (audit["action"], audit["subject_id"], audit["purpose"]) == ("read", created["id"], "customer service")
    assert fake.refused(lambda: fake.run(customers.get, "nobody")).status == 404


def test_search_finds_by_email_or_phone_through_blind_indexes(fake):
    carla = register(fake)
    other = register(fake, {"full_name": "Davi", "email": "davi@example.com"})
    mark = fake.mark()
    found = fake.run(customers.search, email=" Carla@Example.COM ", phone=None, limit=10, cursor=None)
    assert [c["id"] for c in found["items"]] == [carla["id"]]
    by_phone = fake.run(customers.search, email=None, phone="21998765432", limit=10, cursor=None)
    assert [c["id"] for c in by_phone["items"]] == [carla["id"]]
    page = fake.run(customers.search, email=None, phone=None, limit=1, cursor=None)
    rest = fake.run(customers.search, email=None, phone=None, limit=1, cursor=page["next_cursor"])
    assert [c["id"] for c in page["items"] + rest["items"]] == [carla["id"], other["id"]]
    assert [a["purpose"] for a in fake.audit_since(mark)] == ["customer search"] * 2 + ["customer list"] * 2
    bad = fake.refused(lambda: fake.run(customers.search, email="not an e-mail", phone=None, limit=10, cursor=None))
    assert (bad.status, bad.detail, bad.extensions["errors"][0]["field"]) == (
        422, "The request body is invalid.", "email")


def test_update_customer(fake):
    carla = register(fake)
    register(fake, {"full_name": "Davi", "email": "davi@example.com"})
    mark = fake.mark()
    shown = fake.run(customers.update, carla["id"], {"email": None, "gender": "feminino"}, today=fake.today)
    assert shown["email"] is None and shown["gender"] == "feminino" and shown["phone"] == "+5521998765432"
    assert fake.events_since(mark) == ["identity.customer_changed.v1"]
    assert fake.published_since(mark, "identity.customer_changed.v1")[0]["data"]["fields"] == ["email", "gender"]
    assert fake.row("customers", carla["id"])["email_index"] is None
    assert [a["purpose"] for a in fake.audit_since(mark)] == ["customer record maintenance"] * 2
    stranded = fake.refused(lambda: fake.run(customers.update, carla["id"], {"phone": None}, today=fake.today))
    assert {e["field"] for e in stranded.extensions["errors"]} == {"email", "phone"}
    taken = fake.refused(lambda: fake.run(customers.update, carla["id"], {"email": "davi@example.com"},
                                          today=fake.today))
    assert taken.status == 409
    nameless = fake.refused(lambda: fake.run(customers.update, carla["id"], {"full_name": ""}, today=fake.today))
    assert nameless.extensions["errors"] == [{"field": "full_name", "message": "cannot be removed"}]
    assert fake.refused(lambda: fake.run(customers.update, "nobody", {}, today=fake.today)).status == 404
