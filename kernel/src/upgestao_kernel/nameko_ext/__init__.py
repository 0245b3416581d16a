"""The thin nameko layer: dependency providers and entrypoints.

Everything nameko- or eventlet-specific in the kernel lives here, so the
domain and service-layer code could move to another transport unchanged.
"""

from .. import user_id_stamp  # noqa: F401  (every publish carries the connection's user_id)
from . import (
    reconnect,  # noqa: F401  (first: nameko's consumers reconnect quickly)
    standalone,  # noqa: F401  (a standalone proxy's replies in rpc.reply-<its service>-<uuid>)
)
from .database import Database, ServiceDatabase
from .entrypoints import reliable_handler
from .health import HealthRpc
from .metrics import Metrics
from .rpc import rpc

__all__ = ["Database", "ServiceDatabase", "reliable_handler", "HealthRpc", "Metrics", "rpc"]
