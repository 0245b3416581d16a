"""The import-linter contracts (root pyproject.toml, run by `make lint` and `make test`) cover the
kernel and every installed service: a service added without its package in root_packages would
escape the layer rules unnoticed."""

from __future__ import annotations

import tomllib
from pathlib import Path

from upgestao_kernel.service_registry import service_definitions, service_package

ROOT = Path(__file__).resolve().parent.parent


def test_the_contracts_cover_the_kernel_and_every_installed_service():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    packages = {service_package(definition) for definition in service_definitions().values()}
    assert sorted(config["root_packages"]) == sorted({"upgestao_kernel", *packages})
    assert config["contracts"], "no contract: lint-imports would check nothing"
