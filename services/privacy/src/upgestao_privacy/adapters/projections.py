"""The read models of privacy's rights areas, as the kernel's projections.

Listed in the service's ``Database(projections=...)`` and its definition, so the unit of work applies
them in the append's transaction and ``rebuild`` (run as the owner: the runtime role may not empty an
incident table) reproduces them from the event log. The audit log itself is no projection: it is the
record, not a view of one.
"""

from __future__ import annotations

from . import consent_tables, incident_repository, request_tables


def projections() -> list:
    return [request_tables.projection, consent_tables.PROJECTION, incident_repository.projection]
