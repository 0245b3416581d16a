"""A client generated from ``/v1/openapi.json`` by openapi-python-client works against the running
platform: the generator is the test of the document (issue 9, defect 5).

The document must give an ASCII package name, every model (a ``User`` whose ``status`` enum once
collided with the ``UserStatus`` schema was dropped, and with it every user answer), and answers the
generated code parses: tokens, customers, users, a photo, and problem documents for errors.

The only generator setting is ``content_type_overrides`` (the generator's documented way to send a
raw body of another media type than ``application/octet-stream``): the photo routes take and give
``image/jpeg``, ``image/png`` or ``image/webp``.
"""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, Api

pytestmark = pytest.mark.e2e

VENV_BIN = Path(sys.executable).parent
PACKAGE = "up_gestao_api_client"
GENERATOR_CONFIG = """\
content_type_overrides:
  image/jpeg: application/octet-stream
  image/png: application/octet-stream
  image/webp: application/octet-stream
  application/x-ndjson: application/octet-stream
"""


@pytest.fixture(scope="module")
def generated(platform, tmp_path_factory):
    """The client package generated from the running gateway's document, imported."""
    workdir = tmp_path_factory.mktemp("generated-client")
    document = requests.get(f"{platform.url}/v1/openapi.json", timeout=10)
    assert document.status_code == 200
    (workdir / "openapi.json").write_bytes(document.content)
    (workdir / "config.yaml").write_text(GENERATOR_CONFIG, encoding="utf-8")
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # its post-hooks run ruff
    result = subprocess.run(
        [str(VENV_BIN / "openapi-python-client"), "generate", "--path", "openapi.json", "--config", "config.yaml",
         "--meta", "none"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Unable to process schema" not in output, output  # a model dropped
    assert "Endpoint will not be generated" not in output, output  # an operation dropped
    package_dir = workdir / PACKAGE
    assert package_dir.is_dir(), f"expected an ASCII package {PACKAGE}: {sorted(p.name for p in workdir.iterdir())}"
    sys.path.insert(0, str(workdir))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(workdir))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(name: str):
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_every_operation_and_model_is_generated(generated):
    models = _module("models")
    for model in ("User", "UserStatus", "UserPage", "UserStatusChange", "Customer", "CustomerCreate", "TokenPair",
                  "Problem", "Photo"):
        assert hasattr(models, model), model
    for api in ("auth.login", "customers.create_customer", "customers.get_customer", "users.me", "users.put_photo",
                "users.get_photo", "audit.export_audit", "users.deactivate_user"):
        _module(f"api.{api}")


def test_login_customer_user_photo_and_problems_through_the_generated_client(generated, platform):
    client_module, models, types = _module("client"), _module("models"), _module("types")
    login, create_customer, get_customer = (_module(f"api.{name}") for name in (
        "auth.login", "customers.create_customer", "customers.get_customer"))
    me, get_user, put_photo, get_photo, create_user = (_module(f"api.users.{name}") for name in (
        "me", "get_user", "put_photo", "get_photo", "create_user"))
    Api(platform.url).admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)  # the first admin exists

    anonymous = client_module.Client(base_url=platform.url, raise_on_unexpected_status=True)
    # a wrong password: the 401 problem, parsed
    refused = login.sync_detailed(client=anonymous, body=models.Login(email=ADMIN_EMAIL, password="not the one"))
    assert refused.status_code == 401
    assert isinstance(refused.parsed, models.Problem)
    assert refused.parsed.type_.endswith("/invalid-credentials") and refused.parsed.status == 401
    assert refused.headers["content-type"] == "application/problem+json"

    tokens = login.sync(client=anonymous, body=models.Login(email=ADMIN_EMAIL, password=ADMIN_PASSWORD))
    assert isinstance(tokens, models.TokenPair) and tokens.token_type == "Bearer"
    client = client_module.AuthenticatedClient(base_url=platform.url, token=tokens.access_token,
                                               raise_on_unexpected_status=True)

    # the Me model: the User model's fields (the one the enum collision dropped) and the policy version to accept
    profile = me.sync(client=client)
    assert isinstance(profile, models.Me)
    assert profile.status is models.MeStatus.ACTIVE and profile.role == "admin"

    tag = uuid.uuid4().hex[:8]
    body = models.CustomerCreate.from_dict({
        "full_name": f"Cliente Gerado {tag}", "email": f"gerado.{tag}@example.com.br",
        "phone": f"(11) 9{int(tag[:4], 16) % 9000 + 1000}-{int(tag[4:], 16) % 9000 + 1000}",
    })
    created = create_customer.sync_detailed(client=client, body=body)
    assert created.status_code == 201, created.content
    assert isinstance(created.parsed, models.Customer)
    read = get_customer.sync(customer_id=uuid.UUID(created.parsed.id), client=client)
    assert isinstance(read, models.Customer)
    assert (read.id, read.full_name, read.email) == (created.parsed.id, f"Cliente Gerado {tag}",
                                                     f"gerado.{tag}@example.com.br")

    missing = get_customer.sync_detailed(customer_id=uuid.uuid4(), client=client)
    assert missing.status_code == 404 and isinstance(missing.parsed, models.Problem)
    assert missing.parsed.type_.endswith("/not-found")

    invalid = create_customer.sync_detailed(client=client, body=models.CustomerCreate.from_dict(
        {"full_name": "Sem Contato", "email": "not-an-e-mail"}))
    assert invalid.status_code == 422 and isinstance(invalid.parsed, models.Problem)
    assert [(error.field, error.message) for error in invalid.parsed.errors] == [
        ("email", "must look like name@example.com")]

    # a user's photo (a raw image body, and a binary answer)
    user = create_user.sync(client=client, body=models.UserCreate.from_dict({
        "full_name": f"Usuária Gerada {tag}", "email": f"usuaria.{tag}@example.com.br",
        "phone": f"(21) 9{int(tag[:4], 16) % 9000 + 1000}-{int(tag[4:], 16) % 9000 + 1000}",
        "birth_date": "1990-05-17", "job_title": "Atendente", "role": "attendant", "password": "Girassol-Azul-77",
        "address": {"street": "Rua Augusta", "number": "1500", "district": "Consolação", "city": "São Paulo",
                    "state": "SP", "postal_code": "01304-001", "country": "BR"},
    }))
    assert isinstance(user, models.User) and user.status is models.UserStatus.ACTIVE
    fetched = get_user.sync(user_id=uuid.UUID(user.id), client=client)
    assert isinstance(fetched, models.User) and fetched.has_photo is False

    photo = put_photo.sync_detailed(user_id=uuid.UUID(user.id), client=client,
                                    body=types.File(payload=io.BytesIO(_webp()), mime_type="image/webp"))
    assert photo.status_code == 200, photo.content
    assert isinstance(photo.parsed, models.Photo) and photo.parsed.content_type == "image/webp"
    downloaded = get_photo.sync_detailed(user_id=uuid.UUID(user.id), client=client)
    assert downloaded.status_code == 200 and downloaded.content[:4] == b"RIFF"


def _webp() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 120, 40)).save(out, format="WEBP")
    return out.getvalue()
