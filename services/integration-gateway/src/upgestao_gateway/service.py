"""nameko service of the integration gateway: the platform's HTTP front door.

Thin: the service is its dependencies and the routes of each downstream service, mixed in
(:mod:`upgestao_gateway.entrypoints`): the gateway's own (liveness, readiness, ping, the OpenAPI
document), identity's, privacy's audit log, the notifier's delivery records, and messaging's
conversations and chats, and the privacy centre's web session (its pages and files are served under
``/app/`` by the HTTP server itself: :mod:`upgestao_gateway.entrypoints.web`). Each route validates,
calls services over RPC and shapes the answer; bearer tokens (or the web session's cookie) are
identity's access tokens, verified locally (:mod:`upgestao_gateway.access`).
"""

from __future__ import annotations

from upgestao_kernel.nameko_ext import HealthRpc, Metrics

from .access.authentication import Authenticator, AuthenticatorFactory
from .entrypoints.api_keys.routes import ApiKeyRoutes
from .entrypoints.audit.routes import AuditRoutes
from .entrypoints.dependencies import Access, Config, Database, JwtAuthentication, Readiness, Rpc
from .entrypoints.identity.routes import IdentityRoutes
from .entrypoints.integrations.routes import IntegrationRoutes
from .entrypoints.messaging.routes import MessagingRoutes
from .entrypoints.notifications.routes import NotificationRoutes
from .entrypoints.operations.routes import OperationsRoutes
from .entrypoints.privacy_consent.routes import PrivacyConsentRoutes
from .entrypoints.privacy_exports.routes import PrivacyExportRoutes
from .entrypoints.privacy_incidents.routes import PrivacyIncidentRoutes
from .entrypoints.privacy_requests.routes import PrivacyRequestRoutes
from .entrypoints.push import LivePush
from .entrypoints.web.session import WebSessionRoutes


class GatewayService(OperationsRoutes, IdentityRoutes, AuditRoutes, NotificationRoutes, MessagingRoutes,
                     PrivacyRequestRoutes, PrivacyConsentRoutes, PrivacyIncidentRoutes, PrivacyExportRoutes,
                     IntegrationRoutes, ApiKeyRoutes, WebSessionRoutes, HealthRpc):
    name = "gateway"

    db = Database()
    metrics = Metrics()  # /metrics on <SERVICE>_METRICS_ADDRESS, RPC timings, outbox depth and lag
    rpc = Rpc()
    config = Config()
    access = Access()
    readiness = Readiness()
    push = LivePush()  # GET /v1/stream: the WebSocket of live events (upgestao_gateway.push)

    # Verifies bearer tokens: identity's access tokens (tests may plug another Authenticator).
    authenticator: Authenticator | AuthenticatorFactory = JwtAuthentication()
