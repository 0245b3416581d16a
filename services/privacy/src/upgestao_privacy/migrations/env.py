"""Privacy's migrations run as the audit log's owner (``PRIVACY_MIGRATION_DATABASE_URL``) and then grant
the runtime role (the user of ``PRIVACY_DATABASE_URL``, the URL the kernel's ``migrate`` passes) only
what the service needs: see ``upgestao_privacy.adapters.database_roles``. Without a migration URL
(SQLite; or one PostgreSQL role for both) they run as before, with the one URL."""

from alembic import context
from upgestao_kernel.db import create_engine
from upgestao_kernel.migrations import run_migrations
from upgestao_privacy.adapters.database_roles import grant_runtime_role, user_of
from upgestao_privacy.settings import migration_database_url

runtime_url = context.config.get_main_option("sqlalchemy.url")
owner_url = migration_database_url(runtime_url)
if owner_url != runtime_url:
    context.config.set_main_option("sqlalchemy.url", owner_url.replace("%", "%%"))
run_migrations(context)
runtime_role = user_of(runtime_url)
if owner_url != runtime_url and runtime_role and runtime_role != user_of(owner_url):
    engine = create_engine(owner_url, pool_size=1)
    try:
        with engine.begin() as connection:
            grant_runtime_role(connection, runtime_role)
    finally:
        engine.dispose()
