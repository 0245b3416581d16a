"""What a route's outcome becomes: a JSON answer, or a problem document (RFC 9457).

A handler returns a payload (answered with the route's status), a :class:`Reply` (another status, extra
headers), a werkzeug ``Response`` (passed through) or a :class:`~.streaming.Stream`; or it raises.
:func:`problem_from_exception` decides what a raised exception tells the client: a
:class:`~.problems.Problem` as it is, a service's ``ServiceError`` as its problem, an unreachable
service 503, anything else a generic 500 whose traceback goes to the logs only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from upgestao_kernel.errors import ServiceError
from upgestao_kernel.logging import get_logger
from werkzeug.wrappers import Request, Response

from ...adapters.rpc import RpcUnavailable
from .problems import PROBLEM_CONTENT_TYPE, Problem, internal_error, problem_from_service_error, service_unavailable

log = get_logger(__name__)

JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class Reply:
    """A payload answered with another status than the route's, or extra headers."""

    payload: Any = None
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def problem_from_exception(exc: BaseException) -> Problem:
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, ServiceError):
        return problem_from_service_error(exc)
    if isinstance(exc, RpcUnavailable):
        log.warning("http.service_unavailable", downstream=exc.service, method=exc.method, reason=exc.reason)
        return service_unavailable()
    log.error("http.unhandled_exception", error_type=type(exc).__name__,
              exc_info=(type(exc), exc, exc.__traceback__))
    return internal_error()


def dumps(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(dumps(payload), status=status, headers=dict(headers or {}), content_type=JSON_CONTENT_TYPE)


def problem_response(problem: Problem, request: Request) -> Response:
    body = problem.to_dict(instance=request.path, request_id=getattr(request, "request_id", None))
    response = Response(dumps(body), status=problem.status, headers=problem.headers,
                        content_type=PROBLEM_CONTENT_TYPE)
    response.problem_slug = problem.type.rsplit("/", 1)[-1]  # the metrics' problem label (.metrics)
    return response
