"""The web app under /app/ without a broker: the gateway's WSGI app over a stub server (no route), its
pages, static files and security headers; index.html's lack of inline script or style."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
from upgestao_gateway.entrypoints.http.server import GatewayApp
from upgestao_gateway.entrypoints.web.headers import CONTENT_SECURITY_POLICY, security_headers
from upgestao_gateway.entrypoints.web.pages import STATIC_ROOT, StaticFiles
from upgestao_gateway.settings import EdgeSettings
from werkzeug.routing import Map
from werkzeug.test import Client

EXPECTED_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def web_client(production: bool = False, root: Path = STATIC_ROOT) -> Client:
    server = SimpleNamespace(edge=EdgeSettings(), upgrades={}, static_files=StaticFiles(root), production=production,
                             make_url_map=lambda: Map())
    return Client(GatewayApp(server))


@pytest.fixture
def client() -> Client:
    return web_client()


def assert_app_headers(response, production: bool = False) -> None:
    headers = response.headers
    assert headers["Content-Security-Policy"] == EXPECTED_CSP
    assert "unsafe" not in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["X-Frame-Options"] == "DENY"
    for feature in ("camera=()", "microphone=()", "geolocation=()"):
        assert feature in headers["Permissions-Policy"]
    assert ("Strict-Transport-Security" in headers) is production


def test_the_policy_is_the_one_promised():
    assert CONTENT_SECURITY_POLICY == EXPECTED_CSP


@pytest.mark.parametrize("path", ["/app", "/app/", "/app/privacy", "/app/contact/3f1c2d4e-0000-4000-8000-000000000000",
                                  "/app/dpo/requests/x", "/app/me/"])
def test_every_page_path_answers_index_html_not_to_be_stored(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert b'<script type="module" src="/app/static/js/app.js">' in response.data
    assert response.headers["Cache-Control"] == "no-store"
    assert_app_headers(response)


@pytest.mark.parametrize("path, content_type", [
    ("/app/static/js/app.js", "text/javascript; charset=utf-8"),
    ("/app/static/app.css", "text/css; charset=utf-8"),
    ("/app/static/index.html", "text/html; charset=utf-8"),
])
def test_a_static_file_has_its_type_an_etag_and_is_revalidated(client, path, content_type):
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Cache-Control"] == "no-cache"
    etag = response.headers["ETag"]
    assert etag.startswith('"') and len(etag) > 10
    assert response.data == (STATIC_ROOT / path[len("/app/static/"):]).read_bytes()
    assert_app_headers(response)
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag
    other = client.get(path, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200


def test_head_answers_the_headers_without_the_body(client):
    response = client.head("/app/static/js/app.js")
    assert response.status_code == 200
    assert response.data == b""
    assert int(response.headers["Content-Length"]) == (STATIC_ROOT / "js" / "app.js").stat().st_size
    assert_app_headers(response)
    assert client.head("/app/privacy").status_code == 200


def test_an_svg_is_image_svg_xml(tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    response = web_client(root=tmp_path).get("/app/static/logo.svg")
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/svg+xml"


def test_a_changed_file_gets_a_new_etag(tmp_path):
    (tmp_path / "a.js").write_text("export const a = 1;\n")
    client = web_client(root=tmp_path)
    first = client.get("/app/static/a.js").headers["ETag"]
    (tmp_path / "a.js").write_text("export const a = 22;\n")
    assert client.get("/app/static/a.js").headers["ETag"] != first


@pytest.mark.parametrize("path", [
    "/app/static/../../settings.py",
    "/app/static/%2e%2e/%2e%2e/settings.py",
    "/app/static/js/..%2f..%2fapp.css",
    "/app/static/%2e%2e%2f%2e%2e%2fsettings.py",
    "/app/static/..%5c..%5csettings.py",
    "/app/static/js/../../../../../../etc/passwd",
    "/app/static//etc/passwd",
    "/app/static/.hidden",
    "/app/static/js/",
    "/app/static/js",
    "/app/static/",
    "/app/static",
    "/app/static/missing.js",
    "/app/static/js/app.js%00.css",
    "/app/static/%252e%252e/settings.py",
])
def test_a_missing_file_or_a_path_out_of_the_directory_is_a_404_problem(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == 404
    assert_app_headers(response)


def test_a_symbolic_link_out_of_the_directory_is_not_followed(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    root = tmp_path / "static"
    root.mkdir()
    (root / "link.txt").symlink_to(secret)
    response = web_client(root=root).get("/app/static/link.txt")
    assert response.status_code == 404
    assert b"secret" not in response.data


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_a_page_or_a_file_takes_no_other_method(client, method):
    for path in ("/app/", "/app/static/app.css"):
        response = client.open(path, method=method)
        assert response.status_code == 405
        assert response.headers["Allow"] == "GET, HEAD"
        assert_app_headers(response)


def test_hsts_is_sent_in_production_only():
    assert_app_headers(web_client(production=True).get("/app/"), production=True)
    assert_app_headers(web_client(production=True).get("/app/static/js/app.js"), production=True)
    assert_app_headers(web_client(production=False).get("/app/"), production=False)
    assert "Strict-Transport-Security" in security_headers(True)
    assert "Strict-Transport-Security" not in security_headers(False)


def test_paths_outside_app_get_none_of_it(client):
    response = client.get("/application")
    assert response.status_code == 404
    assert "Content-Security-Policy" not in response.headers


class InlineFinder(HTMLParser):
    """Every inline script, style element, style attribute and event-handler attribute of a document."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.scripts: list[dict] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name in attributes:
            if name == "style" or name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
        if tag == "script":
            self.scripts.append(attributes)
            if "src" not in attributes:
                self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style>")
        if tag == "a" and (attributes.get("href") or "").lower().startswith("javascript:"):
            self.found.append("javascript: link")
        self._in = tag

    def handle_data(self, data):
        if self._in == "script" and data.strip():
            self.found.append("script text")


def test_index_html_has_no_inline_script_or_style():
    finder = InlineFinder()
    finder.feed((STATIC_ROOT / "index.html").read_text(encoding="utf-8"))
    assert finder.found == []
    assert finder.scripts and all(s["src"].startswith("/app/static/") for s in finder.scripts)
