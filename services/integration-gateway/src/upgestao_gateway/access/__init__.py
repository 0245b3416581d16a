"""Access control of the gateway: identity's access tokens verified locally.

* :mod:`.tokens` — JWT (EdDSA) verification and the authenticator;
* :mod:`.keys` — identity's public keys (JWKS), fetched and cached;
* :mod:`.permissions` — the role → permissions map, cached and refreshed;
* :mod:`.revocations` / :mod:`.stream` — revoked sessions, learned from the
  ``gateway.access-events`` RabbitMQ stream;
* :mod:`.control` — the nameko extension holding all of it per container;
* :mod:`.denials` — the audited 403 of a missing permission;
* :mod:`.settings` — the environment variables.
"""

from .control import Access, AccessControl, JwtAuthentication
from .denials import deny
from .settings import AccessSettings, load_access_settings

__all__ = ["Access", "AccessControl", "AccessSettings", "JwtAuthentication", "deny", "load_access_settings"]
