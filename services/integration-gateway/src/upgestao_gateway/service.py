"""nameko service of the integration gateway: the platform's HTTP front door.

Thin: each route validates, calls services over RPC and shapes the answer.
Routes are declared with :func:`~upgestao_gateway.web.route`; bearer tokens
are identity's access tokens, verified locally (:mod:`upgestao_gateway.access`).
"""

from __future__ import annotations

from functools import partial

from nameko.dependency_providers import Config
from upgestao_kernel.nameko_ext import Database, HealthRpc

from .access import Access, JwtAuthentication
from .audit_routes import AuditRoutes
from .auth import Authenticator, AuthenticatorFactory
from .identity_routes import IdentityRoutes
from .openapi import openapi_document
from .problems import Problem
from .readiness import DOWN, SKIPPED, check_broker, expect_healthy, run_checks
from .rpc import Rpc
from .schemas import HealthSchema, PingSchema, ReadySchema
from .web import GatewayRequest, route

# Services the gateway cannot answer without.
DOWNSTREAM_SERVICES = ("identity", "messaging", "privacy", "notifier")
OPERATIONS = ("operations",)


class GatewayService(IdentityRoutes, AuditRoutes, HealthRpc):
    name = "gateway"

    db = Database()
    rpc = Rpc()
    config = Config()
    access = Access()

    # Verifies bearer tokens: identity's access tokens (tests may plug another Authenticator).
    authenticator: Authenticator | AuthenticatorFactory = JwtAuthentication()
    readiness_timeout_s = 2.0
    downstream_services = DOWNSTREAM_SERVICES

    @route("GET", "/healthz", personal_data=False, response=HealthSchema, tags=OPERATIONS,
           summary="Liveness: the process answers (no I/O)")
    def healthz(self, request: GatewayRequest) -> dict:
        return {"status": "ok"}

    @route("GET", "/readyz", personal_data=False, response=ReadySchema, errors=(503,), tags=OPERATIONS,
           summary="Readiness: the broker, the gateway's database and every service answer")
    def readyz(self, request: GatewayRequest) -> dict:
        timeout_s = self.readiness_timeout_s
        # The broker first, and alone: every other check goes through it, so without it they
        # could only wait out their timeouts. A stopped broker refuses at once: so does /readyz.
        results = run_checks({"broker": partial(check_broker, self.config["AMQP_URI"], timeout_s)}, timeout_s)
        checks = {"database": self.db.ping}
        if self.access.enabled:  # revoked sessions read up to date: authenticated routes can answer
            checks["revocations"] = partial(self.access.expect_current, timeout_s)
        for service in self.downstream_services:
            checks[service] = partial(self._health_of, service, timeout_s)
        if results["broker"] == DOWN:
            results.update(run_checks({"database": self.db.ping}, timeout_s))
            results.update({name: SKIPPED for name in checks if name not in results})
        else:
            results.update(run_checks(checks, timeout_s))
        down = sorted(name for name, state in results.items() if state == DOWN)
        if down:
            raise Problem("not-ready", f"Not ready: {', '.join(down)} unavailable.", checks=results)
        return {"status": "ready", "checks": results}

    def _health_of(self, service: str, timeout_s: float) -> None:
        expect_healthy(self.rpc.call(service, "health", timeout=timeout_s))

    @route("GET", "/v1/ping", personal_data=False, response=PingSchema, errors=(503,), tags=OPERATIONS,
           summary="One RPC round trip through the platform")
    def ping(self, request: GatewayRequest) -> dict:
        answer = self.rpc.identity.ping()
        return {"pong": True, "service": answer["service"], "request_id": request.request_id}

    @route("GET", "/v1/openapi.json", personal_data=False, response={"type": "object"}, tags=OPERATIONS,
           summary="This OpenAPI document")
    def openapi(self, request: GatewayRequest) -> dict:
        return openapi_document(type(self))
