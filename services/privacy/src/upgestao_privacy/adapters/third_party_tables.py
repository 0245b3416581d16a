"""Privacy's read model of the third parties personal data is shared with (issue 15, R9.1).

``third_parties``: one row per recipient as the audit log's ``share`` records name it
(``integration:<id>``), with the tool's name, its privacy-policy URL and its status, written by privacy's
handlers of ``integrations.integration_registered.v1`` / ``integration_changed.v1`` (no personal data:
names of tools and URLs of policies). A row keeps the latest event's values: an older event delivered after
a newer one (a retry, a parked one replayed) changes nothing. Sharing reports (the subject's summary, the
access bundle, a sharing-information request) look recipients up here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from upgestao_kernel.schema import UtcDateTime

from .tables import metadata

third_parties = sa.Table(
    "third_parties",
    metadata,
    sa.Column("recipient", sa.String(80), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("privacy_policy_url", sa.String(2048), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# What the runtime role may do on this table (merged into database_roles.RUNTIME_PRIVILEGES): rows are
# added and changed by the handlers, read by the reports; never deleted (a report names a past recipient)
PRIVILEGES: Mapping[str, tuple[str, ...]] = {
    "third_parties": ("SELECT", "INSERT", "UPDATE"),
}


class SqlThirdParties:
    """The ``third_parties`` rows, on a unit of work's connection."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def record(self, recipient: str, name: str, privacy_policy_url: str, status: str, at: datetime) -> bool:
        """The recipient's values as of ``at``, unless a row holds later ones; whether it changed."""
        t = third_parties.c
        values = {"name": name, "privacy_policy_url": privacy_policy_url, "status": status, "updated_at": at}
        changed = self.conn.execute(third_parties.update().where(t.recipient == recipient, t.updated_at <= at)
                                    .values(**values)).rowcount
        if changed:
            return True
        if self.conn.execute(sa.select(t.recipient).where(t.recipient == recipient)).first() is not None:
            return False  # a later event was applied already
        self.conn.execute(third_parties.insert().values(recipient=recipient, **values))
        return True

    def of(self, recipients: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``{recipient: {"name", "privacy_policy_url", "status"}}`` of the known ones among ``recipients``."""
        wanted = sorted({r for r in recipients if isinstance(r, str)})
        if not wanted:
            return {}
        t = third_parties.c
        rows = self.conn.execute(sa.select(t.recipient, t.name, t.privacy_policy_url, t.status)
                                 .where(t.recipient.in_(wanted))).all()
        return {r.recipient: {"name": r.name, "privacy_policy_url": r.privacy_policy_url, "status": r.status}
                for r in rows}
