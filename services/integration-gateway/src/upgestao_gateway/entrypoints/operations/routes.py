"""The gateway's own routes: liveness, readiness, one RPC round trip, the OpenAPI document.

None needs a token or touches a person's data. ``/readyz`` checks, concurrently and within
``readiness_timeout_s`` each, the broker (and the depth of its ``upgestao.unrouted`` queue), the
gateway's database, the revocation view (when the JWT authenticator is on) and ``health()`` of each of
``downstream_services`` (:mod:`upgestao_gateway.service_layer.readiness`).

``/readyz`` is public: anyone gets ``ready`` (200) or ``not ready`` (503) and nothing more, from a
check at most ``readiness_max_age_s`` old (one check in flight at a time), so a flood of it opens no
broker connection and makes no RPC beyond one check per period (issue 11, finding 12). What each
dependency says, and how many messages wait in ``upgestao.unrouted``, is for operators: a direct request
from ``GATEWAY_OPS_NETWORKS`` (loopback by default; never one relayed by a trusted proxy) gets the
details, from a fresh check (the one in flight, if any).
"""

from __future__ import annotations

from functools import partial

from ...adapters.broker import check_broker
from ...service_layer.readiness import Report, assess, expect_healthy
from ..http.openapi import openapi_document
from ..http.problems import Problem
from ..http.request import GatewayRequest
from ..http.routing import route
from .schemas import HealthSchema, PingSchema, ReadySchema

# Services the gateway cannot answer without.
DOWNSTREAM_SERVICES = ("identity", "messaging", "privacy", "notifier", "integrations")
OPERATIONS = ("operations",)


class OperationsRoutes:
    """Mixed into the gateway service (which provides ``self.rpc``, ``self.db``, ``self.config``,
    ``self.access`` and ``self.readiness``)."""

    readiness_timeout_s = 2.0
    readiness_max_age_s = 2.0  # how old the public answer may be (see Readiness)
    downstream_services = DOWNSTREAM_SERVICES

    @route("GET", "/healthz", personal_data=False, response=HealthSchema, tags=OPERATIONS,
           summary="Liveness: the process answers (no I/O)")
    def healthz(self, request: GatewayRequest) -> dict:
        return {"status": "ok"}

    @route("GET", "/readyz", personal_data=False, response=ReadySchema, errors=(503,), tags=OPERATIONS,
           summary="Readiness: the broker, the gateway's database and every service answer",
           description="Ready or not, from a check at most a few seconds old. Each dependency's state and the "
                       "depth of the broker's upgestao.unrouted queue are shown only to a direct request from "
                       "an operator network (GATEWAY_OPS_NETWORKS).")
    def readyz(self, request: GatewayRequest) -> dict:
        report = self.readiness.get(self._check_readiness, fresh=request.operator)
        if not request.operator:
            if not report.ready:
                raise Problem("not-ready", "Not ready.")
            return {"status": "ready"}
        details = {"checks": dict(report.checks), "unrouted_depth": report.unrouted_depth}
        if not report.ready:
            raise Problem("not-ready", f"Not ready: {', '.join(report.down)} unavailable.", **details)
        return {"status": "ready", **details}

    def _check_readiness(self) -> Report:
        timeout_s = self.readiness_timeout_s
        through_broker = {}
        if self.access.enabled:  # revoked sessions read up to date: authenticated routes can answer
            through_broker["revocations"] = partial(self.access.expect_current, timeout_s)
        for service in self.downstream_services:
            through_broker[service] = partial(self._health_of, service, timeout_s)
        depth: list[int | None] = [None]

        def broker() -> None:
            depth[0] = check_broker(self.config["AMQP_URI"], timeout_s)

        results = assess(broker, self.db.ping, through_broker, timeout_s)
        return Report(results, depth[0])

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
