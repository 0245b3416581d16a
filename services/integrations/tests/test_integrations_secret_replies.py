"""A signing secret is answered once and never kept: the gateway's writes are keyed requests (their replies are
stored with their effects, for a retry to be answered from), and register's and rotate_secret's replies hold a
secret, so theirs are not stored. The keyed call is made as the gateway makes it (an ``idempotency_key`` in the
context); its row in ``request_replies`` says ``not_kept`` and holds no reply, and the same key again is a 409
(the outcome is known to have happened, its answer is not kept), never the secret."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from nameko.standalone.rpc import ServiceRpcProxy
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.schema import request_replies
from upgestao_kernel.testing_tokens import acting_as


def keyed(hub, key: str, actor_id: str):
    """A proxy calling as an admin with the gateway's idempotency key."""
    return ServiceRpcProxy("integrations", {"AMQP_URI": hub.amqp_uri, "serializer": "json"},
                           context_data={**acting_as(actor_id, "admin"), "idempotency_key": key}, timeout=15)


def replies(hub) -> list:
    engine = sa.create_engine(hub.database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(request_replies)).all()
    finally:
        engine.dispose()


def test_the_secret_of_a_keyed_register_or_rotation_is_not_kept_and_a_retry_never_shows_it(hub, receiver):
    actor = str(uuid.uuid4())
    register_key, rotate_key = f"{actor}:{uuid.uuid4()}", f"{actor}:{uuid.uuid4()}"
    arguments = ("CRM Acme", receiver.url + "/kept", ["*"], ["email"], "https://acme.example/privacidade")
    with keyed(hub, register_key, actor) as admin:
        created = admin.register(*arguments)
    with keyed(hub, rotate_key, actor) as admin:
        rotated = admin.rotate_secret(created["id"])
    assert created["secret"].startswith("whsec_") and rotated["secret"].startswith("whsec_")

    rows = {row.method: row for row in replies(hub)}
    assert {rows["register"].key, rows["rotate_secret"].key} == {register_key, rotate_key}
    for row in rows.values():
        assert row.state == "not_kept" and row.reply is None
    stored = " ".join(str(value) for row in replies(hub) for value in row)
    assert created["secret"] not in stored and rotated["secret"] not in stored

    for key, call in ((register_key, lambda admin: admin.register(*arguments)),
                      (rotate_key, lambda admin: admin.rotate_secret(created["id"]))):
        with keyed(hub, key, actor) as admin, pytest.raises(ServiceError) as retried:
            call(admin)
        assert retried.value.status == 409
        assert "whsec_" not in str(retried.value) and "whsec_" not in str(retried.value.extensions)
    # neither retry ran again: one integration, rotated once
    assert hub.admin.integrations()["items"][0]["secret_rotated_at"] is not None
    assert len(hub.admin.integrations()["items"]) == 1
