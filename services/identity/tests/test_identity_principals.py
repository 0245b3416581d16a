"""Who asks identity is proven, not claimed (issue 11, finding 1): ``actor_role=system`` (or ``admin``) in
a header, without identity's signature, is nobody; a token identity did not sign is nobody."""

from __future__ import annotations

import pytest
from nameko.standalone.rpc import ServiceRpcProxy
from upgestao_kernel.errors import ServiceError


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
