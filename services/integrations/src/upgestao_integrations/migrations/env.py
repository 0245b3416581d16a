from alembic import context
from upgestao_kernel.migrations import run_migrations

run_migrations(context)
