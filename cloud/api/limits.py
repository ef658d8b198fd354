"""The largest request the API reads: refused from its headers, before a byte of its body is read.

A body longer than :func:`max_request_bytes` (what the largest legitimate request needs: an enrolment's five
photos) gets 413; a POST, PUT or PATCH whose length is not said (chunked) gets 411, so that every body's size is
known before it is read.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from cloud.gates.enrolment import MAX_PHOTOS

__all__ = ["BodyLimit", "max_request_bytes"]


def max_request_bytes(media_max_bytes: int) -> int:
    """An enrolment's photos at their largest, and room for the form's other fields."""
    return MAX_PHOTOS * media_max_bytes + 1024 * 1024


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        length = headers.get("content-length")
        refusal: tuple[int, str] | None = None
        if length is not None:
            if not length.isdigit():
                refusal = (400, "Content-Length is not a number")
            elif int(length) > self.max_bytes:
                refusal = (413, f"the request is {int(length)} bytes, over the {self.max_bytes}-byte limit")
        elif scope["method"] in ("POST", "PUT", "PATCH") and "chunked" in headers.get("transfer-encoding", ""):
            refusal = (411, "send the body with a Content-Length")
        if refusal is None:
            await self.app(scope, receive, send)
            return
        code, detail = refusal
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
