"""The security headers of every ``/app`` answer (pages, static files, the session routes, their errors).

The front end is plain ES modules and one stylesheet, all from this origin, so the policy allows nothing
else: no inline script or style (no ``unsafe-inline``, no ``unsafe-eval``), no framing, no plugin, no
form posting elsewhere, no ``<base>``. ``Strict-Transport-Security`` is sent in production only (a local
``http://127.0.0.1`` must not teach a browser to insist on HTTPS for that host).
"""

from __future__ import annotations

from collections.abc import Mapping

APP_PREFIX = "/app"

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
))
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
HSTS = "max-age=63072000; includeSubDomains"

_ALWAYS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": PERMISSIONS_POLICY,
    "X-Frame-Options": "DENY",
}


def is_app_path(path: str) -> bool:
    """Whether ``path`` is the web app's (``/app`` or under ``/app/``)."""
    return path == APP_PREFIX or path.startswith(APP_PREFIX + "/")


def security_headers(production: bool) -> Mapping[str, str]:
    """The headers every ``/app`` answer carries (HSTS in production only)."""
    return {**_ALWAYS, "Strict-Transport-Security": HSTS} if production else dict(_ALWAYS)
