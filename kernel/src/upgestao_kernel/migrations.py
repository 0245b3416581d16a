"""Alembic, one migration history per service, in the service's own package."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from .db import create_engine

MIGRATION_LOCK = 0x75706765  # "upge": one service's migrations at a time per database


def alembic_config(script_location: str, database_url: str) -> Config:
    """``script_location`` like ``upgestao_identity:migrations``."""
    config = Config()
    config.set_main_option("script_location", script_location)
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(script_location: str, database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(script_location, database_url), revision)


def downgrade(script_location: str, database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(script_location, database_url), revision)


def run_migrations(context) -> None:
    """The body of every service's ``migrations/env.py`` (online mode only)."""
    url = context.config.get_main_option("sqlalchemy.url")
    engine = create_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                # Two replicas migrating at once (init containers): one waits.
                connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
                connection.commit()
            context.configure(
                connection=connection,
                target_metadata=None,
                render_as_batch=url.startswith("sqlite"),
                transaction_per_migration=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
    finally:
        engine.dispose()
