"""The third parties personal data is shared with, as sharing reports show them (issue 15, R9.1).

The integrations service announces each integration (``integrations.integration_registered.v1``) and each
change of it (``integrations.integration_changed.v1``): id, the tool's name, its privacy-policy URL, its
status (no personal data). :func:`record_integration` keeps them in the ``third_parties`` read model under
the name the audit log's ``share`` records use for it (``integration:<id>``). :func:`describe_shares` gives
each ``shared_with`` entry of a subject's summary its ``name`` and ``privacy_policy_url``: from that table,
else from ``PRIVACY_THIRD_PARTY_POLICIES`` (``{"<recipient>": "<url>"}``: recipients that are not
integrations), else None.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ..adapters.third_party_tables import SqlThirdParties

POLICIES_VAR = "PRIVACY_THIRD_PARTY_POLICIES"
INTEGRATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STATUSES = ("enabled", "disabled")
NAME_MAX = 200
URL_MAX = 2048
REGISTERED = "integrations.integration_registered.v1"
CHANGED = "integrations.integration_changed.v1"


class MalformedIntegration(ValueError):
    """An integrations event privacy cannot record (the handler's error: retried, then parked)."""


def recipient_of(integration_id: str) -> str:
    """The recipient an integration is in the audit log's ``share`` records (the contract's name)."""
    return f"integration:{integration_id}"


def record_integration(uow: Any, data: Mapping[str, Any], occurred_at: datetime) -> bool:
    """An integration registered or changed, kept unless a later event was kept already; whether it was."""
    integration_id = data.get("integration_id")
    if not isinstance(integration_id, str) or INTEGRATION_ID.match(integration_id) is None:
        raise MalformedIntegration("integration_id")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
        raise MalformedIntegration("name")
    url = data.get("privacy_policy_url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")) or len(url) > URL_MAX:
        raise MalformedIntegration("privacy_policy_url")
    status = data.get("status")
    if status not in STATUSES:
        raise MalformedIntegration("status")
    return SqlThirdParties(uow.conn).record(recipient_of(integration_id), name.strip(), url, status, occurred_at)


def fallback_policies(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``PRIVACY_THIRD_PARTY_POLICIES`` as a mapping (checked at start by the requests' and exports' settings:
    here a malformed value gives nothing rather than failing a report)."""
    raw = ((os.environ if environ is None else environ).get(POLICIES_VAR) or "").strip()
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}


def describe_shares(conn: Any, shares: Iterable[dict[str, Any]], fallback: Mapping[str, str] | None = None) -> None:
    """Each entry of ``shares`` (a summary's ``shared_with``) given ``name`` and ``privacy_policy_url``, in place:
    one query for all its recipients."""
    entries = list(shares)
    known = SqlThirdParties(conn).of(e.get("recipient") for e in entries) if entries else {}
    policies = fallback_policies() if fallback is None else fallback
    for entry in entries:
        recipient = entry.get("recipient")
        party = known.get(recipient) if isinstance(recipient, str) else None
        entry["name"] = party["name"] if party else None
        entry["privacy_policy_url"] = (party["privacy_policy_url"] if party
                                       else policies.get(recipient) if isinstance(recipient, str) else None)
