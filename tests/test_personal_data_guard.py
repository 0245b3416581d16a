"""Audit by construction (D3, R3.1): service code cannot reach personal data
except through the unit of work's ``personal`` door, which audits.

A static check over every service's source: no service imports the vault,
builds one, decrypts directly, or reaches into the kernel's private vault
attributes. A new service (or a hurried change) that does fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "imports the vault": re.compile(r"^\s*(from\s+upgestao_kernel(\.vault)?\s+import\s+.*\bvault\b|"
                                    r"from\s+upgestao_kernel\.vault\s+import|import\s+upgestao_kernel\.vault)", re.M),
    "decrypts directly": re.compile(r"\.decrypt(_many)?\("),
    "reaches a private vault": re.compile(r"\._vault\b"),
    "builds a vault": re.compile(r"\bVault\("),
}

# Files that decrypt something that is not personal data, each with why (never a person's value).
NOT_PERSONAL = {
    "services/integrations/src/upgestao_integrations/adapters/secret_box.py":
        ("decrypts directly", "the integrations' webhook signing secrets (AES-GCM under their own key), no person's"),
}


def service_sources() -> list[Path]:
    return sorted(p for p in (ROOT / "services").glob("*/src/**/*.py"))


def test_the_check_sees_every_service():
    services = {p.relative_to(ROOT / "services").parts[0] for p in service_sources()}
    assert {"identity", "messaging", "privacy", "notifier", "integration-gateway"} <= services


def test_no_service_reads_personal_data_around_the_audited_door():
    offences = [
        f"{path.relative_to(ROOT)}: {why}"
        for path in service_sources()
        for why, pattern in FORBIDDEN.items()
        if pattern.search(path.read_text(encoding="utf-8"))
        and NOT_PERSONAL.get(str(path.relative_to(ROOT)), ("",))[0] != why
    ]
    assert offences == [], "use uow.personal.open/seal (audited) instead:\n" + "\n".join(offences)


def test_the_check_would_catch_an_offence():
    sample = "from upgestao_kernel.vault import Vault\nvalue = vault.decrypt(conn, s, 'email', c)\n"
    assert FORBIDDEN["imports the vault"].search(sample)
    assert FORBIDDEN["decrypts directly"].search(sample)
