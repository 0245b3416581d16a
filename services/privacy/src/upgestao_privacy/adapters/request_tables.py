"""Tables of privacy's request area (projections/read models), on the audit log's metadata."""

from __future__ import annotations

from collections.abc import Mapping

# What the runtime role may do on this area's tables (merged into database_roles.RUNTIME_PRIVILEGES)
PRIVILEGES: Mapping[str, tuple[str, ...]] = {}
