"""The FastAPI application. Built by :func:`create_api` with everything it needs passed in."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

import sc
from cloud.web.pages import mount_web

from .deps import ApiContext
from .docs import add_docs, add_security_headers
from .limits import BodyLimit, max_request_bytes
from .routes import auth, devices, garages, gates, live, open311, passes, privacy, residents, site, stats, workorders
from .scope import Scopes

__all__ = ["create_api"]

log = logging.getLogger(__name__)

DESCRIPTION = """
Work orders from device alarms and resident reports, devices and their state, events,
supervision figures and a live feed for the control room; residents the gates recognise (enrolled
from photos, kept as face embeddings only), gate entries, snapshots and remote open.

Sign in with `POST /api/v1/auth/token` (username, password) and send the token as
`Authorization: Bearer <token>`. Roles: operator (control room), grid_worker, department,
resident, admin. A role that may not do something gets 403; bad input gets 422 with the reason.
"""


def create_api(ctx: ApiContext) -> FastAPI:
    api = FastAPI(
        title="Smart-community cloud API",
        version=sc.__version__,
        description=DESCRIPTION,
        docs_url=None,  # served from the project's own files: add_docs
        redoc_url=None,
    )
    api.state.ctx = ctx
    api.state.scopes = Scopes(ctx.site)  # who sees which part of the community (cloud/api/scope.py)
    for module in (auth, workorders, devices, stats, open311, live, passes, residents, gates, site, garages, privacy):
        api.include_router(module.router)
    api.include_router(open311.media_router)
    mount_web(api)  # the control-room page at / (cloud/web)
    add_docs(api)
    add_security_headers(api)
    api.add_middleware(BodyLimit, max_bytes=max_request_bytes(ctx.media_max_bytes))  # before a body is read

    @api.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> JSONResponse:
        # a value that passed validation but that the database cannot take (a NUL character in a text, a number
        # out of a column's range): the client's input, so a 422 saying which, never a 500
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else "invalid value"
        log.info("refused %s %s: %s", request.method, request.url.path, reason)
        return JSONResponse(status_code=422, content={"detail": f"a value the database cannot store: {reason}"})

    @api.get("/health", tags=["health"], summary="Liveness (no sign-in)")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return api
