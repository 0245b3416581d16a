"""Root conftest: eventlet first (nameko needs it), then the shared fixtures."""

import upgestao_kernel.green  # noqa: F401,I001  (first: eventlet monkey-patching)

import os

from upgestao_kernel.db import green_postgres

green_postgres()  # as in the running services: psycopg2 yields to other greenlets

# Tests always run against the machine's real PostgreSQL and RabbitMQ.
os.environ.setdefault("UPGESTAO_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")

pytest_plugins = ["upgestao_kernel.testing"]
