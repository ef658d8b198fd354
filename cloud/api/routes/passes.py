"""Visitor passes: a resident invites a visitor and gets a signed pass as a QR code."""

from __future__ import annotations

import base64
import io
import secrets
from datetime import datetime, timedelta
from typing import Annotated

import segno
from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from cloud.db.models import User
from cloud.workorders.states import Role
from sc.passes import PassClaims, sign_pass

from ..deps import CtxDep, require

router = APIRouter(prefix="/api/v1/visitor-passes", tags=["visitor passes"])
MAX_VALIDITY = timedelta(days=7)


class PassRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    visitor_name: str = Field(min_length=1, max_length=64)
    gates: list[str] | None = Field(default=None, description="gate ids; default: every gate of the site")
    valid_from: datetime | None = Field(default=None, description="default: now")
    valid_until: datetime
    uses: int = Field(default=1, ge=1, le=10, description="entries it allows")


class PassOut(BaseModel):
    pass_id: str
    token: str = Field(description="what the QR code holds")
    visitor_name: str
    gates: list[str]
    valid_from: datetime
    valid_until: datetime
    uses: int
    qr_png: str = Field(description="the QR code as a data: URL (PNG)")


@router.post("", response_model=PassOut, status_code=201, summary="Invite a visitor: a signed pass and its QR code")
def create_pass(
    body: PassRequest,
    ctx: CtxDep,
    user: Annotated[User, Depends(require(Role.RESIDENT, Role.OPERATOR, Role.ADMIN))],
) -> PassOut:
    if ctx.pass_key is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "visitor passes are not set up (no signing key)")
    known = [g.id for g in ctx.site.gates]
    gates = body.gates if body.gates is not None else known
    unknown = sorted(set(gates) - set(known))
    if unknown or not gates:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unknown gates {unknown} (known: {known})")
    start = body.valid_from or ctx.clock()
    for t in (start, body.valid_until):
        if t.tzinfo is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "times need a time zone, e.g. ...Z")
    if body.valid_until <= start:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "valid_until must be after valid_from")
    if body.valid_until - start > MAX_VALIDITY:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "a pass may last at most 7 days")
    if body.valid_until <= ctx.clock():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "valid_until is already past")
    claims = PassClaims(
        pid=secrets.token_urlsafe(12), site=ctx.site.site.id, res=user.id, vis=body.visitor_name, gates=gates,
        nbf=int(start.timestamp()), exp=int(body.valid_until.timestamp()), uses=body.uses,
    )  # fmt: skip
    token = sign_pass(claims, ctx.pass_key)
    png = io.BytesIO()
    segno.make(token, error="m").save(png, kind="png", scale=6, border=4)
    return PassOut(
        pass_id=claims.pid, token=token, visitor_name=claims.vis, gates=gates, valid_from=claims.valid_from(),
        valid_until=claims.valid_until(), uses=claims.uses,
        qr_png="data:image/png;base64," + base64.b64encode(png.getvalue()).decode(),
    )  # fmt: skip
