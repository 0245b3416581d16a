"""Who asks identity is proven, not claimed (issue 11, finding 1): ``actor_role=system`` (or ``admin``) in
a header, without identity's signature, is nobody; a token identity did not sign is nobody; and a token
identity did sign counts only for a user identity holds, active now, with the role they hold now."""

from __future__ import annotations

import uuid

import pytest
from nameko.standalone.rpc import ServiceRpcProxy
from upgestao_kernel.errors import ServiceError


def error_of(call, *args) -> ServiceError:
    with pytest.raises(ServiceError) as refused:
        call(*args)
    return refused.value


def _call(identity, context: dict):
    ctx = ServiceRpcProxy("identity", identity.config, context_data=context, timeout=15)
    identity._proxies.append(ctx)
    return ctx.start()


@pytest.mark.parametrize("claimed", [
    {"actor_id": "system", "actor_role": "system"},
    {"actor_id": "00000000-0000-4000-8000-000000000001", "actor_role": "admin"},
    {"actor_id": "system", "actor_role": "system", "caller_service": "identity"},
])
def test_an_actor_claimed_in_headers_reads_no_customer(identity, claimed):
    identity.admin().create_customer({"full_name": "Maria Silva", "email": "maria@example.com.br"})
    with pytest.raises(ServiceError) as refused:
        _call(identity, claimed).list_customers()
    assert refused.value.status in (401, 403)
    assert identity.admin().list_customers()["items"]  # the same call with a proven admin is served


def test_a_token_of_role_system_is_refused_even_when_signed(identity):
    from upgestao_kernel.testing_tokens import acting_as

    with pytest.raises(ServiceError) as refused:
        _call(identity, acting_as("system", "system")).list_customers()
    assert refused.value.status in (401, 403)


# -- the actor as identity holds them now (issue 11: "identity re-reads the actor's current role and status") --


def _logged_in(identity, user: dict) -> object:
    """A caller presenting the access token ``user`` got at a login (what the gateway forwards)."""
    tokens = identity.caller().login(user["email"], identity.password)
    return identity.caller(access_token=tokens["access_token"])


def test_a_user_deactivated_after_logging_in_is_refused_at_once(identity):
    customer = identity.admin().create_customer({"full_name": "Maria Silva", "email": "maria@example.com.br"})
    user = identity.add_user(1)
    ana = _logged_in(identity, user)
    assert ana.me()["id"] == user["id"] and ana.get_customer(customer["id"])["id"] == customer["id"]

    identity.admin().deactivate_user(user["id"])
    # her token is still signed and unexpired: what identity holds of her now is what counts
    assert error_of(ana.me).status == 401
    refused = error_of(ana.get_customer, customer["id"])
    assert (refused.status, refused.slug) == (403, "forbidden")
    [denied] = identity.audit(actor_id=user["id"], outcome="denied")
    assert (denied["action"], denied["resource_type"], denied["subject_id"]) == ("read", "customer", customer["id"])


def test_a_demoted_admins_token_no_longer_grants_what_admins_may(identity):
    user = identity.add_user(2, role="admin")
    bia = _logged_in(identity, user)
    assert user["id"] in {u["id"] for u in bia.list_users()["items"]}

    identity.admin().update_user(user["id"], {"role": "attendant"})
    refused = error_of(bia.list_users)  # her token still says admin
    assert (refused.status, refused.extensions) == (403, {"permission": "users.list"})
    assert error_of(bia.create_user, identity.user_data(3)).status == 403
    assert identity.rows("SELECT count(*) AS n FROM users")[0].n == 2  # the first admin and her: none created
    assert bia.list_customers()["items"] == []  # what an attendant may, she still may


def test_a_token_for_a_user_identity_does_not_hold_is_refused(identity):
    identity.admin().create_customer({"full_name": "Maria Silva", "email": "maria@example.com.br"})
    stranger = str(uuid.uuid4())
    forged = identity.caller(stranger, "admin")  # a signature identity trusts, for nobody it knows
    assert error_of(forged.me).status == 401
    refused = error_of(forged.list_customers)
    assert (refused.status, refused.slug) == (403, "forbidden")
    assert [a["outcome"] for a in identity.audit(actor_id=stranger)] == ["denied"]
