"""The services' cache of identity's role map (``RolePermissions``): cached a few seconds, and fetched once
more when an API key's role is not in it yet (a key issued a moment ago, issue 15)."""

from __future__ import annotations

from types import SimpleNamespace

import eventlet
import pytest
from upgestao_kernel.errors import ServiceError
from upgestao_kernel.nameko_ext.role_permissions import RolePermissions

KEY_ROLE = "apikey:0b5c6a52-3f0e-4a8e-9a57-1c1d2e3f4a5b"


class Identity:
    def __init__(self) -> None:
        self.roles = {"admin": ["users.read"]}
        self.fetches = 0
        self.down = False
        self.slow = False

    def __call__(self) -> dict:
        self.fetches += 1
        if self.slow:
            eventlet.sleep(0.05)
        if self.down:
            raise OSError("identity away")
        return {name: frozenset(perms) for name, perms in self.roles.items()}


@pytest.fixture
def cache():
    identity = Identity()
    provider = RolePermissions()
    provider.container = SimpleNamespace(service_name="sample", config={})
    provider.setup()
    provider._fetch = identity
    return provider, identity


def test_the_map_is_fetched_once_and_kept(cache):
    provider, identity = cache
    assert provider.permissions_of("admin") == {"users.read"}
    assert provider.permissions_of("admin") == {"users.read"} and provider.permissions_of(None) == frozenset()
    assert provider.permissions_of("system") == frozenset() and provider.permissions_of("nobody") == frozenset()
    assert identity.fetches == 1  # an unknown role that is no key's asks nothing


def test_a_new_keys_role_is_fetched_at_once(cache):
    provider, identity = cache
    provider.permissions_of("admin")
    identity.roles[KEY_ROLE] = ["customers.read"]
    assert provider.permissions_of(KEY_ROLE) == {"customers.read"}
    assert provider.permissions_of(KEY_ROLE) == {"customers.read"} and identity.fetches == 2


def test_an_unknown_key_role_grants_nothing_and_concurrent_askers_share_one_fetch(cache):
    provider, identity = cache
    provider.permissions_of("admin")
    identity.slow = True
    pool = eventlet.GreenPool()
    answers = list(pool.imap(lambda _: provider.permissions_of(KEY_ROLE), range(5)))
    # the first asker fetches; the others asked while that fetch was running (it may have started before
    # their key existed): the next one fetches again, and the rest, who asked before that one started, share it
    assert answers == [frozenset()] * 5 and identity.fetches == 1 + 2


def test_identity_away_is_503(cache):
    provider, identity = cache
    provider.permissions_of("admin")
    identity.down = True
    with pytest.raises(ServiceError) as refused:
        provider.permissions_of(KEY_ROLE)
    assert refused.value.status == 503
