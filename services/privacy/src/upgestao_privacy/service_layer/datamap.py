"""The platform's data map (R1.1): ``GET /v1/privacy/data-map``.

Gathered at each call from every service's own declaration — ``identity.data_map()``,
``messaging.data_map()`` — and privacy's own (:mod:`..domain.datamap`). A service that does not answer
(not deployed, no ``data_map`` yet, a timeout) is listed ``unavailable`` with the reason and the map says
``complete: false``: a missing part is never silently left out. Needs ``datamap.read`` (checked again here
after the gateway; a refusal is audited as denied); the map holds no personal value, only field names, so a
success is audited as a ``list`` of ``data_map`` for the record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import eventlet
from upgestao_kernel.errors import ServiceError

from ..domain.datamap import assemble, own_items

PERMISSION = "datamap.read"
TIMEOUT_S = 5.0
SOURCES = ("identity", "messaging")


def _declared(name: str, proxy: Any, timeout_s: float) -> tuple[list[Mapping[str, Any]] | None, str | None]:
    try:
        with eventlet.Timeout(timeout_s):
            answer = proxy.data_map()
    except eventlet.Timeout:
        return None, f"{name} did not answer within {timeout_s:g} s"
    except ServiceError as exc:
        return None, f"{name} refused: {exc.status} {exc.slug}"
    except Exception as exc:  # MethodNotFound (no data_map yet), UnknownService, a broken connection
        return None, f"{name} has no data map to give ({type(exc).__name__})"
    items = answer.get("items") if isinstance(answer, Mapping) else answer
    if not isinstance(items, list):
        return None, f"{name} answered something that is not a data map"
    return items, None


def platform_data_map(uow_factory: Callable[[], Any], permissions_of: Callable[[str | None], frozenset[str]],
                      proxies: Mapping[str, Any], timeout_s: float = TIMEOUT_S) -> dict:
    with uow_factory() as uow:
        ctx = uow.context
        if not (ctx.actor_id and PERMISSION in permissions_of(ctx.actor_role)):
            uow.deny(action="list", resource_type="data_map", resource_id=None, subject_id=None, fields=(),
                     purpose="authorization")
            raise ServiceError("forbidden", f"Your role does not grant {PERMISSION}.", 403,
                               {"permission": PERMISSION})
    declarations: list[tuple[str, list[Mapping[str, Any]] | None, str | None]] = []
    for name in SOURCES:
        items, reason = _declared(name, proxies[name], timeout_s)
        declarations.append((name, items, reason))
    declarations.append(("privacy", own_items(), None))
    result = assemble(declarations)
    with uow_factory() as uow:
        uow.audit_access(action="list", resource_type="data_map", resource_id=None, subject_id=None, fields=(),
                         purpose="data map")
    return result
