"""The gateway's HTTP series (issue 18): ``upgestao_http_requests_total`` and
``upgestao_http_request_duration_seconds``, recorded by :class:`~.server.GatewayApp` for every answer.

Labels are bounded: ``route`` is the matched route's Werkzeug rule (``/v1/users/<uuid:user_id>``, never the
path asked for), ``unmatched`` for a path no route has, ``/app/*`` for the privacy centre's pages and files;
``status`` the 3-digit code; ``problem`` the problem type's slug of a problem+json answer (from the code's
own table), ``""`` otherwise.
"""

from __future__ import annotations

from upgestao_kernel.metrics import BoundedNames, counter, histogram

HTTP_REQUESTS = counter("upgestao_http_requests_total",
                        "HTTP requests answered, by route, method, status and problem.",
                        ["route", "method", "status", "problem"])
HTTP_DURATION = histogram("upgestao_http_request_duration_seconds", "Time to answer an HTTP request.",
                          ["route", "method"])

UNMATCHED = "unmatched"
WEB_APP = "/app/*"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_problems = BoundedNames(limit=100, pattern=BoundedNames.SLUG)
_children: dict[tuple, tuple] = {}


def problem_label(slug: str | None) -> str:
    """A problem type's slug as a label value: ``""`` for none, ``other`` for anything unexpected."""
    if not slug:
        return ""
    return _problems(slug)


def observe_request(route: str, method: str, status: int, problem: str | None, seconds: float) -> None:
    """One answer: counted and timed (the label children cached: a dict lookup per request)."""
    method = method if method in _METHODS else "other"
    key = (route, method, status, problem or "")
    children = _children.get(key)
    if children is None:
        children = (HTTP_REQUESTS.labels(route=route, method=method, status=str(status),
                                         problem=problem_label(problem)),
                    HTTP_DURATION.labels(route=route, method=method))
        _children[key] = children
    children[0].inc()
    children[1].observe(seconds)
