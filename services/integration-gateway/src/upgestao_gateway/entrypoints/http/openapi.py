"""The OpenAPI 3.0.3 document, generated from the route declarations.

Routes are found on the service class the same way nameko finds them, so a
route that is served is a route that is documented. Each operation carries
its route's declarations as extensions: ``x-permission`` (the permission an
authenticated route needs) and ``x-personal-data`` (whether it reads or
changes a person's data, so each successful call is audited).
"""

from __future__ import annotations

import functools
import inspect
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from .bodies import BinaryResponse, RawBody, StreamResponse
from .problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES
from .request import IDEMPOTENCY_KEY_HEADER, IDEMPOTENCY_KEY_PATTERN, REQUEST_ID_HEADER, REQUEST_ID_PATTERN
from .responses import JSON_CONTENT_TYPE
from .routing import GatewayRoute
from .schemas import ProblemSchema
from .spec import RouteSpec

OPENAPI_VERSION = "3.0.3"
# Client generators name packages after info.title (openapi-python-client: "<title>-client"), so the
# title is ASCII; the product's own spelling is in x-product-name and the description.
API_TITLE = "UpGestao API"
PRODUCT_NAME = "UpGestão"
_CONVERTER_SCHEMAS = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "uuid": {"type": "string", "format": "uuid"},
}
_STRING = {"type": "string"}
_BINARY = {"type": "string", "format": "binary"}
_TITLES: dict[int, str] = {}
for _status, _title in PROBLEM_TYPES.values():
    _TITLES.setdefault(_status, _title)  # the first, generic type of each status
_TITLES[503] = "Service unavailable"
BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "An access token issued by the identity service: a JWT signed with EdDSA (Ed25519), "
                   "valid 15 minutes. Each authenticated operation names the permission it needs in "
                   "x-permission; without it the answer is 403.",
}


def routes_of(service_cls: type) -> list[tuple[str, RouteSpec]]:
    """``[(method_name, spec)]`` of every gateway route of ``service_cls``."""
    found = []
    for name, member in inspect.getmembers(service_cls, inspect.isfunction):
        for entrypoint in getattr(member, "nameko_entrypoints", ()):
            if isinstance(entrypoint, GatewayRoute):
                found.append((name, entrypoint.spec))
    return sorted(found, key=lambda item: (item[1].template, item[1].method))


def _version() -> str:
    try:
        return version("upgestao-integration-gateway")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def _with_request_id(response: dict[str, Any]) -> dict[str, Any]:
    response["headers"] = {REQUEST_ID_HEADER: "RequestId"}
    return response


def _operation(method_name: str, spec: RouteSpec) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": method_name, "responses": {}}
    if spec.summary:
        operation["summary"] = spec.summary
    if spec.description:
        operation["description"] = spec.description
    if spec.tags:
        operation["tags"] = list(spec.tags)
    if spec.auth == "required":
        operation["security"] = [{"bearerAuth": []}]
        operation["x-permission"] = spec.permission
        if spec.alternatives:  # any one of these also lets a caller through
            operation["x-permission-alternatives"] = list(spec.alternatives)
    operation["x-personal-data"] = spec.personal_data
    parameters: list[Any] = ["RequestId"]
    if spec.keyed:
        parameters.append("IdempotencyKey")
    if spec.query is not None:
        parameters.append({"in": "query", "schema": spec.query})
    operation["parameters"] = parameters
    if isinstance(spec.body, RawBody):
        operation["requestBody"] = {
            "required": True,
            "description": f"At most {spec.body.max_bytes} bytes.",
            "content": {content_type: {"schema": dict(_BINARY)} for content_type in spec.body.content_types},
        }
    elif spec.body is not None:
        operation["requestBody"] = {"required": True, "content": {JSON_CONTENT_TYPE: {"schema": spec.body}}}

    success: dict[str, Any] = {"description": spec.summary or "Success"}
    if isinstance(spec.response, BinaryResponse):
        if spec.response.description:
            success["description"] = spec.response.description
        success["content"] = {content_type: {"schema": dict(_BINARY)} for content_type in spec.response.content_types}
    elif isinstance(spec.response, StreamResponse):
        if spec.response.description:
            success["description"] = spec.response.description
        success["content"] = {spec.response.content_type: {"schema": dict(_STRING)}}
    elif spec.status != 204:
        success["content"] = {JSON_CONTENT_TYPE: {"schema": spec.response}}
    operation["responses"][str(spec.status)] = _with_request_id(success)
    if spec.repeat_status is not None:  # the same body, for what existed already (an idempotent repeat)
        operation["responses"][str(spec.repeat_status)] = _with_request_id(
            {**success, "description": "What existed already (the same request repeated), as it is."})
    for status in spec.error_statuses:
        operation["responses"][str(status)] = _with_request_id({
            "description": _TITLES.get(status, "Error"),
            "content": {PROBLEM_CONTENT_TYPE: {"schema": ProblemSchema}},
        })
    if spec.auth == "required":  # a signed-in caller's quota on every answer; when to come back after a refusal
        for status, response in operation["responses"].items():
            if status != "401":
                response["headers"].update(RATE_LIMIT_HEADERS)
        operation["responses"]["429"]["headers"]["Retry-After"] = "RetryAfter"
        operation["responses"]["429"]["description"] = "Rate limit exceeded (rate-limited), or a service's own limit"
    return operation


RATE_LIMIT_HEADERS = {"RateLimit-Limit": "RateLimitLimit", "RateLimit-Remaining": "RateLimitRemaining",
                      "RateLimit-Reset": "RateLimitReset"}
_SECONDS = {"type": "string", "pattern": "^[0-9]+$"}


@functools.cache
def openapi_document(service_cls: type) -> dict[str, Any]:
    spec = APISpec(
        title=API_TITLE,
        version=_version(),
        openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin()],
        info={"description": "The HTTP API of the UpGestão platform. Every error is "
                             "application/problem+json (RFC 9457).",
              "x-product-name": PRODUCT_NAME},
    )
    spec.components.schema("Problem", schema=ProblemSchema)
    spec.components.security_scheme("bearerAuth", BEARER_SCHEME)
    spec.components.parameter("RequestId", "header", {
        "name": REQUEST_ID_HEADER,
        "required": False,
        "description": "Your id for this request, used when it matches ^[A-Za-z0-9._-]{8,128}$. Any other "
                       "value is accepted and replaced by a generated id (answered in X-Request-ID), never "
                       "refused: a request id is for tracing, not a reason to fail a request.",
        "schema": {"type": "string"},
    })
    spec.components.parameter("IdempotencyKey", "header", {
        "name": IDEMPOTENCY_KEY_HEADER,
        "required": False,
        "description": "Your key for this write (a quoted or bare string). Sent again with the same request, "
                       "it is answered as the first time was, and the write is never carried out twice; with "
                       "another request, it is refused (422); while a request with it is still being carried out, 409 "
                       "idempotency-key-in-use with Retry-After. Without one, the gateway draws a key and answers "
                       "it in the Idempotency-Key header: use it to retry a write whose answer was a 503.",
        "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
    })
    spec.components.header("RateLimitLimit", {
        "description": "Requests you may send at once: the size of your quota's bucket (per gateway replica; "
                       "absent when your kind of caller is not limited).", "schema": dict(_SECONDS)})
    spec.components.header("RateLimitRemaining", {
        "description": "Requests left at once after this one.", "schema": dict(_SECONDS)})
    spec.components.header("RateLimitReset", {
        "description": "Seconds until your quota's bucket is full again.", "schema": dict(_SECONDS)})
    spec.components.header("RetryAfter", {
        "description": "Seconds to wait before sending a request again.", "schema": dict(_SECONDS)})
    spec.components.header("RequestId", {
        "description": "The request id: yours when well-formed, else generated.",
        "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN},
    })

    by_path: dict[str, list[tuple[str, RouteSpec]]] = {}
    for method_name, route in routes_of(service_cls):
        by_path.setdefault(route.template, []).append((method_name, route))
    for template, routes in by_path.items():
        path_parameters = [
            {"in": "path", "name": name, "required": True, "schema": dict(_CONVERTER_SCHEMAS.get(conv, _STRING))}
            for name, conv in routes[0][1].path_variables
        ]
        spec.path(
            path=template,
            operations={route.method.lower(): _operation(name, route) for name, route in routes},
            parameters=path_parameters or None,
        )
    return spec.to_dict()
