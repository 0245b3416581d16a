"""The fixtures every messaging end-to-end module uses, as a pytest plugin: a module says
``pytest_plugins = ["e2e_messaging_fixtures"]`` (a fixture the module defines itself wins).

A plugin rather than names imported into each module: pytest finds them without the module importing
names its tests then take as parameters.
"""

from __future__ import annotations

import pytest
from e2e_api import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from e2e_identity import create_dpo
from e2e_messaging import Desk, new_desk


@pytest.fixture(scope="module")
def api(platform) -> Api:
    return Api(platform.url)


@pytest.fixture(scope="module")
def admin_token(api: Api) -> str:
    return api.admin_tokens(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]


@pytest.fixture(scope="module")
def dpo(platform, api: Api, admin_token: str) -> str:
    """A dpo's token: the audit log's reader."""
    return create_dpo(platform, api, admin_token)[1]["access_token"]


@pytest.fixture
def desk(api: Api, platform, admin_token: str) -> Desk:
    """A fresh cast for one test (the platform is shared: tests stay independent)."""
    return new_desk(api, platform, admin_token)
