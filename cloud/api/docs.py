"""The API's documentation pages, served from the project's own files (cloud/web/static/vendor), so they work
on a site without internet, and every response's security headers.

* ``/docs``: Swagger UI 5.35.0 (Apache-2.0, from the ``swagger-ui-dist`` npm package), started by ``docs.js``;
* ``/redoc``: ReDoc 2.5.1 (MIT, from the ``redoc`` npm package).

:data:`SECURITY_HEADERS` go on every response of the API and the pages: scripts and styles only from this
server (no inline script: the control room's settings travel as a JSON data block), no framing, no MIME
sniffing, no referrer to other sites.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse

import sc

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "add_docs", "add_security_headers"]

VENDOR = "/ui/static/vendor"

#: Everything from this server only. Swagger UI and ReDoc set inline styles (hence 'unsafe-inline' for styles
#: only); ReDoc runs its search in a worker made from a blob; images may be data: URLs (the docs' icons) and
#: blob: URLs (snapshots shown by the control room).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

_SWAGGER = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{title}} - API docs</title>
<link rel="stylesheet" href="{VENDOR}/swagger-ui-5.35.0.css?v={sc.__version__}"></head>
<body><div id="swagger-ui"></div>
<script src="{VENDOR}/swagger-ui-5.35.0-bundle.js?v={sc.__version__}"></script>
<script src="/ui/static/docs.js?v={sc.__version__}"></script>
</body></html>
"""

_REDOC = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{title}} - API reference</title></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="{VENDOR}/redoc-2.5.1.standalone.js?v={sc.__version__}"></script>
</body></html>
"""


def add_docs(api: FastAPI) -> None:
    """``/docs`` and ``/redoc`` from the vendored files (create the app with ``docs_url=None, redoc_url=None``)."""

    @api.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return HTMLResponse(_SWAGGER.replace("{title}", api.title))

    @api.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return HTMLResponse(_REDOC.replace("{title}", api.title))


def add_security_headers(api: FastAPI) -> None:
    @api.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response
