"""Who asks privacy is proven, not claimed: headers saying "dpo" (or "system") without identity's signature
are nobody (issue 11, finding 1)."""

from __future__ import annotations

import uuid

import pytest
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.testing_tokens import acting_as


def test_a_dpo_claimed_in_headers_without_a_token_is_refused(privacy):
    with pytest.raises(ServiceError) as refused:
        privacy.caller(privacy.FORGED_DPO).audit_search({"subject_id": str(uuid.uuid4())}, 10, None)
    assert refused.value.status in (401, 403)
    # the same call with identity's signature is served
    assert privacy.caller(privacy.DPO).audit_search({"subject_id": str(uuid.uuid4())}, 10, None)["items"] == []


def test_system_in_headers_is_nobody(privacy):
    forged = {"actor_id": "system", "actor_role": "system", "caller_service": "identity"}
    with pytest.raises(ServiceError) as refused:
        privacy.caller(forged).audit_search({}, 10, None)
    assert refused.value.status in (401, 403)


def test_a_token_signed_by_another_key_is_nobody(privacy):
    import jwt
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from upgestao_kernel.testing_tokens import TEST_KID, signed_token

    claims = jwt.decode(signed_token("x", "dpo"), options={"verify_signature": False})
    forged = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": TEST_KID})
    context = {**acting_as(privacy.DPO["actor_id"], "dpo"), "access_token": forged}
    with pytest.raises(ServiceError) as refused:
        privacy.caller(context).audit_search({}, 10, None)
    assert refused.value.status in (401, 403)
