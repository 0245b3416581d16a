"""Root conftest: eventlet first (nameko needs it), then the shared fixtures."""

import os
import warnings

warnings.filterwarnings("ignore", message="\\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

from upgestao_kernel.db import green_postgres  # noqa: E402

green_postgres()  # as in the running services: psycopg2 yields to other greenlets

# Tests always run against the machine's real PostgreSQL and RabbitMQ.
os.environ.setdefault("UPGESTAO_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")

pytest_plugins = ["upgestao_kernel.testing"]
