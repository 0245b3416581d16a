"""Tables of privacy's incident area (read models of the ``incident-<id>`` streams), on the audit log's metadata.

``privacy_incidents``: one row per incident (its state, dates, deadline, criterion, counts and its texts as
vault ciphertext); ``privacy_incident_people``: the affected people resolved at confirmation, as ids in order
(the notice pages them). Incidents are kept at least 5 years and never deleted: the runtime role may insert,
read and move an incident's state on, but holds no DELETE (nor TRUNCATE) on either table.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from upgestao_kernel.schema import UtcDateTime

from .tables import metadata

privacy_incidents = sa.Table(
    "privacy_incidents",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("categories", sa.JSON, nullable=False),
    sa.Column("affected_kind", sa.String(32), nullable=False),
    sa.Column("affected_channel", sa.String(40), nullable=True),
    sa.Column("explicit_count", sa.Integer, nullable=False),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("detected_at", UtcDateTime, nullable=False),
    sa.Column("deadline_at", UtcDateTime, nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Column("recorded_by", sa.String(64), nullable=True),
    sa.Column("confirmed_at", UtcDateTime, nullable=True),
    sa.Column("confirmed_by", sa.String(64), nullable=True),
    sa.Column("affected_count", sa.Integer, nullable=True),
    sa.Column("campaign_id", sa.String(36), nullable=True),
    sa.Column("notice_id", sa.String(36), nullable=True),  # the BreachNoticeRequested event's id
    sa.Column("late", sa.Boolean, nullable=False),
    sa.Column("sealed", sa.JSON, nullable=False),  # field -> vault ciphertext (sealed under the incident id)
    sa.Index("ix_privacy_incidents_recorded", "recorded_at", "id"),
    sa.Index("ix_privacy_incidents_notice", "notice_id"),
)

privacy_incident_people = sa.Table(
    "privacy_incident_people",
    metadata,
    sa.Column("incident_id", sa.String(36), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("subject_id", sa.String(36), nullable=False),
    sa.Index("ix_privacy_incident_people_subject", "incident_id", "subject_id"),  # the notifier's retries
)

INCIDENT_TABLES = (privacy_incidents, privacy_incident_people)

# What the runtime role may do on this area's tables (merged into database_roles.RUNTIME_PRIVILEGES):
# no DELETE, no TRUNCATE — an incident and its people stay (LGPD art. 48; kept at least 5 years)
PRIVILEGES: Mapping[str, tuple[str, ...]] = {
    "privacy_incidents": ("SELECT", "INSERT", "UPDATE"),
    "privacy_incident_people": ("SELECT", "INSERT"),
}
