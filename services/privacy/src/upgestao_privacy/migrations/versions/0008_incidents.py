"""Security incidents (LGPD art. 48) and their notice campaigns: the incidents' read model and the people
each confirmed incident affects (ids). The runtime role gets no DELETE on them (adapters/incident_tables.py).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from upgestao_kernel.schema import UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_incidents",
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
        sa.Column("notice_id", sa.String(36), nullable=True),
        sa.Column("late", sa.Boolean, nullable=False),
        sa.Column("sealed", sa.JSON, nullable=False),
    )
    op.create_index("ix_privacy_incidents_recorded", "privacy_incidents", ["recorded_at", "id"])
    op.create_index("ix_privacy_incidents_notice", "privacy_incidents", ["notice_id"])
    op.create_table(
        "privacy_incident_people",
        sa.Column("incident_id", sa.String(36), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("subject_id", sa.String(36), nullable=False),
    )
    op.create_index("ix_privacy_incident_people_subject", "privacy_incident_people", ["incident_id", "subject_id"])


def downgrade() -> None:
    op.drop_index("ix_privacy_incident_people_subject", table_name="privacy_incident_people")
    op.drop_table("privacy_incident_people")
    op.drop_index("ix_privacy_incidents_notice", table_name="privacy_incidents")
    op.drop_index("ix_privacy_incidents_recorded", table_name="privacy_incidents")
    op.drop_table("privacy_incidents")
