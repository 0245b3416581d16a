"""Attacks on who a service believes is asking (issue 11, finding 1, principal half).

Before: identity and privacy took ``actor_id``/``actor_role`` from nameko headers, and ``actor_role=system``
skipped every check, so anyone holding a pod's broker credentials (the Internet-facing gateway's, say)
could call ``identity.list_customers`` as ``system`` and read every customer decrypted. Now the end user
comes only from an access token identity signed, and ``system`` is never something a message can say.
Each attack runs with the GATEWAY's own broker credentials against the whole platform.
"""

from __future__ import annotations

import pytest
import upgestao_kernel.nameko_ext.rpc  # noqa: F401  (answers rebuilt as ServiceError, not RemoteError)
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from nameko.standalone.rpc import ClusterRpcProxy
from upgestao_kernel.errors import ServiceError


@pytest.fixture(scope="module")
def api(platform) -> Api:
    return Api(platform.url)


@pytest.fixture(scope="module")
def gateway_broker(platform) -> dict:
    """The nameko config of a process holding the gateway pod's broker credentials."""
    assert not platform.shared_broker_user, "the platform could not create the services' broker users"
    return {"AMQP_URI": platform.broker_uris["gateway"], "serializer": "json"}


@pytest.fixture(scope="module")
def a_customer(api) -> str:
    admin = api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    created = api.post("/v1/customers", admin, json={"full_name": "Joana Prado", "email": "joana.prado@example.com.br"})
    assert created.status_code == 201, created.text
    return created.json()["id"]


FORGED = [
    pytest.param({"actor_id": "system", "actor_role": "system"}, id="system"),
    pytest.param({"actor_id": "system", "actor_role": "system", "caller_service": "identity"}, id="system-as-identity"),
    pytest.param({"actor_id": "00000000-0000-4000-8000-000000000001", "actor_role": "admin"}, id="admin"),
    pytest.param({"actor_id": "00000000-0000-4000-8000-000000000001", "actor_role": "dpo"}, id="dpo"),
]


@pytest.mark.parametrize("headers", FORGED)
def test_with_the_gateways_credentials_no_header_reads_customers(gateway_broker, a_customer, headers):
    with ClusterRpcProxy(gateway_broker, context_data=headers, timeout=15) as cluster:
        with pytest.raises(ServiceError) as refused:
            cluster.identity.list_customers()
        assert refused.value.status in (401, 403)
        with pytest.raises(ServiceError) as refused:
            cluster.identity.get_customer(a_customer)
        assert refused.value.status in (401, 403)


@pytest.mark.parametrize("headers", FORGED)
def test_with_the_gateways_credentials_no_header_reads_the_audit_log(gateway_broker, headers):
    with ClusterRpcProxy(gateway_broker, context_data=headers, timeout=15) as cluster:
        with pytest.raises(ServiceError) as refused:
            cluster.privacy.audit_search({}, 10, None)
        assert refused.value.status in (401, 403)


def test_a_made_up_token_is_nobody(gateway_broker, a_customer):
    """A token of the right shape signed by a key identity never had (the attacker's own)."""
    import time
    import uuid

    import jwt
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    now = int(time.time())
    claims = {"iss": "upgestao-identity", "aud": "upgestao", "sub": str(uuid.uuid4()), "sid": str(uuid.uuid4()),
              "role": "admin", "iat": now, "nbf": now, "exp": now + 600}
    token = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "attacker"})
    with ClusterRpcProxy(gateway_broker, context_data={"access_token": token}, timeout=15) as cluster:
        with pytest.raises(ServiceError) as refused:
            cluster.identity.get_customer(a_customer)
        assert refused.value.status in (401, 403)


def test_the_same_read_through_the_gateway_with_a_real_token_works(api, a_customer):
    """The control: the attack fails for want of proof, not because the read is broken."""
    admin = api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    assert api.get(f"/v1/customers/{a_customer}", admin).status_code == 200
