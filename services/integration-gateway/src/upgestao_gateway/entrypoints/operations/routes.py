"""The gateway's own routes: liveness, readiness, one RPC round trip, the OpenAPI document.

None needs a token or touches a person's data. ``/readyz`` checks, concurrently and within
``readiness_timeout_s`` each, the broker, the gateway's database, the revocation view (when the JWT
authenticator is on) and ``health()`` of each of ``downstream_services``
(:mod:`upgestao_gateway.service_layer.readiness`).
"""

from __future__ import annotations

from functools import partial

from ...adapters.broker import check_broker
from ...service_layer.readiness import assess, expect_healthy, unavailable
from ..http.openapi import openapi_document
from ..http.problems import Problem
from ..http.request import GatewayRequest
from ..http.routing import route
from .schemas import HealthSchema, PingSchema, ReadySchema

# Services the gateway cannot answer without.
DOWNSTREAM_SERVICES = ("identity", "messaging", "privacy", "notifier")
OPERATIONS = ("operations",)


class OperationsRoutes:
    """Mixed into the gateway service (which provides ``self.rpc``, ``self.db``, ``self.config`` and
    ``self.access``)."""

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
        through_broker = {}
        if self.access.enabled:  # revoked sessions read up to date: authenticated routes can answer
            through_broker["revocations"] = partial(self.access.expect_current, timeout_s)
        for service in self.downstream_services:
            through_broker[service] = partial(self._health_of, service, timeout_s)
        results = assess(partial(check_broker, self.config["AMQP_URI"], timeout_s), self.db.ping, through_broker,
                         timeout_s)
        down = unavailable(results)
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
