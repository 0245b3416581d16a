"""The privacy centre's files: ``/app/static/<file>``, and ``index.html`` for every page path.

The front end routes in the browser (``js/app.js``), so ``/app``, ``/app/`` and any other path under
``/app/`` that is neither ``/app/static/...`` nor the session routes (``/app/session``) answers
``index.html`` (``Cache-Control: no-store``: a new deployment's page is never served from a cache).

``GET``/``HEAD /app/static/<path>`` answers the file under ``upgestao_gateway/web/static`` with its
content type, an ETag (a hash of its bytes) and ``Cache-Control: no-cache`` (revalidated each time: a
304 when ``If-None-Match`` holds its ETag). A path is an allow-list of plain names (letters, digits,
``_``, ``-``, ``.``, never starting with a dot: no ``..``, no hidden file, whether it came encoded or
not) and must resolve to a regular file inside the directory (a symbolic link out of it does not);
anything else is a 404 problem, as is a directory. Other methods are a 405 problem.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from werkzeug.wrappers import Request, Response

from ..http.problems import method_not_allowed, not_found

STATIC_ROOT = Path(__file__).resolve().parents[2] / "web" / "static"
STATIC_PREFIX = "/app/static/"
SESSION_PREFIX = "/app/session"
INDEX = "index.html"
READ_METHODS = ("GET", "HEAD")

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")
_MAX_SEGMENTS = 8


def is_session_path(path: str) -> bool:
    """The session routes (``/app/session``, ``/app/session/...``): API routes, not pages."""
    return path == SESSION_PREFIX or path.startswith(SESSION_PREFIX + "/")


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    etag: str
    content_type: str
    mtime_ns: int
    size: int


class StaticFiles:
    """The files of one directory, read once and again only when they change on disk."""

    def __init__(self, root: Path = STATIC_ROOT) -> None:
        self.root = root.resolve()
        self._cache: dict[Path, StaticFile] = {}

    def find(self, relative: str) -> StaticFile | None:
        """The file at ``relative`` (``js/app.js``), or None when the path is not an allowed one, is
        missing, is not a regular file or leads out of the directory."""
        segments = relative.split("/")
        if not 0 < len(segments) <= _MAX_SEGMENTS or not all(_SEGMENT.match(s) for s in segments):
            return None
        path = self.root.joinpath(*segments)
        try:
            resolved = path.resolve(strict=True)
            if not resolved.is_relative_to(self.root) or not resolved.is_file():
                return None
            stat = resolved.stat()
            cached = self._cache.get(resolved)
            if cached is not None and (cached.mtime_ns, cached.size) == (stat.st_mtime_ns, stat.st_size):
                return cached
            body = resolved.read_bytes()
        except OSError:
            return None
        found = StaticFile(body=body, etag=hashlib.sha256(body).hexdigest()[:32],
                           content_type=CONTENT_TYPES.get(resolved.suffix.lower(), "application/octet-stream"),
                           mtime_ns=stat.st_mtime_ns, size=stat.st_size)
        self._cache[resolved] = found
        return found

    def respond(self, request: Request) -> Response:
        """The answer to a request for a page or static path (not a session path); raises a 404/405
        :class:`~..http.problems.Problem`."""
        if request.method not in READ_METHODS:
            raise method_not_allowed(READ_METHODS)
        path = request.path
        if path.startswith(STATIC_PREFIX):
            found = self.find(path[len(STATIC_PREFIX):])
            if found is None:
                raise not_found()
            headers = {"ETag": f'"{found.etag}"', "Cache-Control": "no-cache"}
            if request.if_none_match.contains(found.etag):
                return Response(status=304, headers=headers)
            return Response(found.body, status=200, headers=headers, content_type=found.content_type)
        if path == STATIC_PREFIX.rstrip("/"):
            raise not_found()
        index = self.find(INDEX)
        if index is None:
            raise not_found()
        return Response(index.body, status=200, headers={"Cache-Control": "no-store"},
                        content_type=index.content_type)
