"""The platform's broker provisioning (issue 11, finding 1): a user per service with its own password
kept in ``<data_dir>/broker-users.json`` (0600, reused, replaced when lost), the unrouted policy,
each process's own ``AMQP_URI``; without any way to create users, outside production, one shared
user said loudly; without the management API, an existing vhost found over AMQP. Real RabbitMQ."""

from __future__ import annotations

import json
import stat
import uuid
from urllib.parse import quote, unquote, urlsplit

import pytest
from kombu import Connection
from upgestao_kernel.broker_identity import platform_prefix
from upgestao_kernel.broker_permissions import UNROUTED_POLICY_NAME
from upgestao_kernel.testing import _api, create_vhost, delete_vhost

pytestmark = pytest.mark.infra  # its vhost fixture reaches the management API (found by make test-fast)

messages: list[str] = []  # what the platforms said (echo)


@pytest.fixture
def vhost():
    name = f"upgestao-prov-{uuid.uuid4().hex[:8]}"
    uri = create_vhost(name)
    yield name, uri
    delete_vhost(name)


def platform_on(platform_module, tmp_path, uri: str, **env):
    return platform_module.Platform(data_dir=tmp_path, amqp_uri=uri, http_address=platform_module.free_address(),
                                    env={"UPGESTAO_ENV": "test", **env}, echo=messages.append)


def test_each_service_gets_its_own_user_and_password_kept_in_a_private_file(platform_module, tmp_path, vhost):
    name, uri = vhost
    platform = platform_on(platform_module, tmp_path, uri)
    platform.provision_broker()
    try:
        assert set(platform.broker_uris) == {s.name for s in platform.services}
        users = {unquote(urlsplit(u).username) for u in platform.broker_uris.values()}
        assert users == {f"{name}.{s}" for s in platform.broker_uris}
        kept = tmp_path / "broker-users.json"
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        passwords = json.loads(kept.read_text())
        for service, service_uri in platform.broker_uris.items():
            assert unquote(urlsplit(service_uri).password) == passwords[f"{name}.{service}"]
            with Connection(service_uri, connect_timeout=5) as conn:
                conn.connect()  # the broker accepts each user on the vhost
        assert platform.environment("identity")["AMQP_URI"] == platform.broker_uris["identity"]
        assert platform.environment()["AMQP_URI"] == uri  # migrations and checks: the given URI
        policy = _api("GET", f"/api/policies/{quote(name, safe='')}/{UNROUTED_POLICY_NAME}").json()
        assert policy["definition"]["overflow"] == "drop-head"

        # a restart reuses the passwords; one the file lost is replaced (and set on the broker)
        lost = f"{name}.gateway"
        kept.write_text(json.dumps({k: v for k, v in passwords.items() if k != lost}))
        again = platform_on(platform_module, tmp_path, uri)
        again.provision_broker()
        renewed = json.loads(kept.read_text())
        assert {k: v for k, v in renewed.items() if k != lost} == {k: v for k, v in passwords.items() if k != lost}
        assert renewed[lost] != passwords[lost]
        with Connection(again.broker_uris["gateway"], connect_timeout=5) as conn:
            conn.connect()
    finally:
        platform.remove_broker_users()
    remaining = {u["name"] for u in _api("GET", "/api/users").json()}
    assert not {u for u in remaining if u.startswith(f"{name}.")}


def test_without_any_way_to_create_users_every_process_shares_the_given_uri_loudly(platform_module, tmp_path, vhost,
                                                                                    monkeypatch):
    name, uri = vhost
    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(platform_module.shutil, "which", lambda command: None)
    messages.clear()
    platform = platform_on(platform_module, tmp_path, uri)
    platform.provision_broker()
    assert platform.shared_broker_user and set(platform.broker_uris.values()) == {uri}
    assert platform.environment("privacy")["UPGESTAO_BROKER_SHARED_USER"] == "1"
    assert any("could not be created" in m and "WARNING" in m for m in messages)

    production = platform_on(platform_module, tmp_path, uri, UPGESTAO_ENV="production")
    with pytest.raises(platform_module.PlatformError, match="own user"):
        production.provision_broker()


def test_without_the_management_api_an_existing_vhost_is_used_and_a_missing_one_named(platform_module, tmp_path,
                                                                                       vhost, monkeypatch):
    name, uri = vhost
    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:9")
    platform = platform_on(platform_module, tmp_path, uri)
    platform_module.ensure_vhost(uri, messages.append, probe=platform.probe_vhost)  # proceeds
    missing = uri.rsplit("/", 1)[0] + "/" + quote(f"{name}-missing", safe="")
    with pytest.raises(platform_module.PlatformError, match="cannot be checked or created"):
        platform_module.ensure_vhost(missing, messages.append, probe=platform.probe_vhost)


@pytest.mark.parametrize("vhost_name", ["/", "", "upgestao-e2e-1", "odd/name with.dots", "/leading"])
def test_the_script_names_users_as_the_kernel_does(platform_module, vhost_name):
    assert platform_module.platform_prefix(vhost_name) == platform_prefix(vhost_name)


def test_deleting_a_vhost_deletes_its_platform_s_users(platform_module, tmp_path):
    name = f"upgestao-prov-{uuid.uuid4().hex[:8]}"
    uri = create_vhost(name)
    try:
        platform_on(platform_module, tmp_path, uri).provision_broker()
    finally:
        platform_module.RabbitAdmin(uri).delete_vhost(name)
    assert not {u["name"] for u in _api("GET", "/api/users").json() if u["name"].startswith(f"{name}.")}
