"""Visitor passes: a resident invites a visitor and gets a signed pass as a QR code; passes are kept, listed and
revocable (cloud/gates/passes.py).

Who may do what (docs/security.md):

* a resident: create passes for their own community's gates (their account's home location decides which), at
  most ``visitors.per_resident_per_day`` in any 24 hours; list, show again and revoke their own;
* the control room (operator, admin): create for any gate; list and revoke any pass;
* a property company's department: list and revoke the passes valid at its communities' gates.

Revoking sends ``pass_revoke`` to every gate the pass was valid at, delivered and acknowledged like a gallery change;
the answer shows each gate's state.
"""

from __future__ import annotations

import base64
import io
import secrets
from datetime import datetime, timedelta
from typing import Annotated

import segno
from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from cloud import audit
from cloud.audit import AuditAction
from cloud.db.models import PassGate, User, VisitorPass
from cloud.gates.passes import (
    RevocationState,
    get_pass,
    list_passes,
    pass_claims,
    pass_gates,
    passes_since,
    record_pass,
    revocation_state,
    revoke_pass,
)
from cloud.gates.store import community_gates
from cloud.workorders.states import Role
from sc.config.schema import Gate
from sc.passes import PassClaims, sign_pass

from ..deps import ApiContext, CtxDep, ScopesDep, SessionDep, is_gate_staff, require
from ..scope import Scopes

router = APIRouter(prefix="/api/v1/visitor-passes", tags=["visitor passes"])

DAY = timedelta(hours=24)


class PassRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    visitor_name: str = Field(min_length=1, max_length=64)
    gates: list[str] | None = Field(
        default=None, min_length=1, max_length=16, description="gate ids; default: every gate you may invite to"
    )
    valid_from: datetime | None = Field(default=None, description="default: now")
    valid_until: datetime
    uses: int = Field(default=1, ge=1, le=100, description="entries it allows (at most the site's visitors.max_uses)")


class PassGatePublic(BaseModel):
    gate: str
    revocation: RevocationState = Field(description="none until revoked; then pending, acked, error or moot")
    error: str | None = Field(default=None, description="the gate's answer when it could not apply the revocation")


class PassPublic(BaseModel):
    """A pass as staff and its resident see it in a list: never the token (the visitor's key)."""

    pass_id: str
    resident: str = Field(description="the user who invited")
    visitor_name: str
    gates: list[PassGatePublic]
    valid_from: datetime
    valid_until: datetime
    uses: int
    created_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None


class PassOut(BaseModel):
    """A pass with what its QR code holds: only for the user who made it."""

    pass_id: str
    token: str = Field(description="what the QR code holds")
    visitor_name: str
    gates: list[str]
    valid_from: datetime
    valid_until: datetime
    uses: int
    qr_png: str = Field(description="the QR code as a data: URL (PNG)")


# ----------------------------------------------------------------------------- who may invite to which gates


def invitable(ctx: ApiContext, user: User) -> list[Gate]:
    """The gates ``user`` may invite a visitor to: a resident their own community's; the control room any."""
    if user.role != Role.RESIDENT.value:
        return list(ctx.site.gates)
    if user.location is None:
        return []
    serves = community_gates(ctx.site)
    return [g for g in ctx.site.gates if serves(g, user.location)]


def _can_manage(scopes: Scopes, ctx: ApiContext, user: User, p: VisitorPass) -> bool:
    """Whether ``user`` may see and revoke ``p``: its resident, the control room, or gate staff of one of its gates."""
    if p.resident == user.id:
        return True
    if not is_gate_staff(ctx.site, user):
        return False
    gates = scopes.gates(user)
    return gates is None or bool(gates & set(p.gates))


def _public(p: VisitorPass, gates: list[PassGate], now: datetime) -> PassPublic:
    return PassPublic(
        pass_id=p.id, resident=p.resident, visitor_name=p.visitor_name,
        gates=[PassGatePublic(gate=g.gate, revocation=revocation_state(p, g, now=now), error=g.error) for g in gates],
        valid_from=p.valid_from, valid_until=p.valid_until, uses=p.uses, created_at=p.created_at,
        revoked_at=p.revoked_at, revoked_by=p.revoked_by,
    )  # fmt: skip


def _out(ctx: ApiContext, claims: PassClaims) -> PassOut:
    assert ctx.pass_key is not None
    token = sign_pass(claims, ctx.pass_key)
    png = io.BytesIO()
    segno.make(token, error="m").save(png, kind="png", scale=6, border=4)
    return PassOut(
        pass_id=claims.pid, token=token, visitor_name=claims.vis, gates=list(claims.gates),
        valid_from=claims.valid_from(), valid_until=claims.valid_until(), uses=claims.uses,
        qr_png="data:image/png;base64," + base64.b64encode(png.getvalue()).decode(),
    )  # fmt: skip


def _pass(session: SessionDep, ctx: ApiContext, scopes: Scopes, user: User, pass_id: str) -> VisitorPass:
    if user.role != Role.RESIDENT.value and not is_gate_staff(ctx.site, user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only a property company's department sees visitor passes")
    p = get_pass(session, pass_id=pass_id)
    if p is None or not _can_manage(scopes, ctx, user, p):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no visitor pass {pass_id!r} of yours")
    return p


Inviter = Annotated[User, Depends(require(Role.RESIDENT, Role.OPERATOR, Role.ADMIN))]
Manager = Annotated[User, Depends(require(Role.RESIDENT, Role.OPERATOR, Role.ADMIN, Role.DEPARTMENT))]


# ----------------------------------------------------------------------------- routes


@router.post("", response_model=PassOut, status_code=201, summary="Invite a visitor: a signed pass and its QR code")
def create_pass(body: PassRequest, ctx: CtxDep, session: SessionDep, user: Inviter) -> PassOut:
    if ctx.pass_key is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "visitor passes are not set up (no signing key)")
    policy = ctx.site.visitors
    allowed = invitable(ctx, user)
    if not allowed:
        why = "your account has no home" if user.location is None else "there are no gates for your home"
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"{why} location: ask the property company to set it before inviting"
        )
    known = {g.id for g in ctx.site.gates}
    gates = body.gates if body.gates is not None else [g.id for g in allowed]
    unknown = sorted(set(gates) - known)
    if unknown:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unknown gates {unknown} (known: {sorted(known)})")
    foreign = sorted(set(gates) - {g.id for g in allowed})
    if foreign:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"gates {foreign} are not your community's: you may invite to {sorted(g.id for g in allowed)}",
        )
    gates = list(dict.fromkeys(gates))  # once each, in the order asked
    now = ctx.clock()
    start = body.valid_from or now
    for t in (start, body.valid_until):
        if t.tzinfo is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "times need a time zone, e.g. ...Z")
    if body.valid_until <= start:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "valid_until must be after valid_from")
    if body.valid_until - start > timedelta(days=policy.max_days):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"a pass may last at most {policy.max_days} days")
    if body.valid_until <= now:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "valid_until is already past")
    if start > now + timedelta(days=30):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "a pass may start at most 30 days ahead")
    if body.uses > policy.max_uses:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"a pass may allow at most {policy.max_uses} entries"
        )
    if user.role == Role.RESIDENT.value:
        made = passes_since(session, resident=user.id, since=now - DAY)
        if made >= policy.per_resident_per_day:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"you have created {made} visitor passes in the last 24 hours, this site's limit "
                f"({policy.per_resident_per_day}): try again later, or ask the property company",
                {"Retry-After": "3600"},
            )
    claims = PassClaims(
        pid=secrets.token_urlsafe(12), site=ctx.site.site.id, res=user.id, vis=body.visitor_name, gates=gates,
        nbf=int(start.timestamp()), exp=int(body.valid_until.timestamp()), uses=body.uses,
    )  # fmt: skip
    record_pass(session, claims=claims, gates=ctx.site.gates, now=now)
    session.commit()
    return _out(ctx, claims)


@router.get("", response_model=list[PassPublic], summary="Visitor passes: your own, or (staff) your gates'")
def list_(
    ctx: CtxDep,
    session: SessionDep,
    scopes: ScopesDep,
    user: Manager,
    active: Annotated[bool, Query(description="only those still valid and not revoked")] = False,
    resident: Annotated[str | None, Query(max_length=64, description="staff: one resident's passes")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[PassPublic]:
    """A resident sees their own passes; the control room all; a property company those valid at its gates."""
    now = ctx.clock()
    who: str | None
    gates: frozenset[str] | None
    if user.role == Role.RESIDENT.value:
        who, gates = user.id, None
    elif is_gate_staff(ctx.site, user):
        who, gates = resident, scopes.gates(user)
    else:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only a property company's department sees visitor passes")
    rows = list_passes(session, resident=who, gates=gates, valid_at=now if active else None, limit=limit)
    by_pass = pass_gates(session, pass_ids=[p.id for p in rows])
    return [_public(p, by_pass[p.id], now) for p in rows]


@router.get(
    "/{pass_id}",
    response_model=PassOut | PassPublic,
    summary="One pass: its QR code again for the user who made it, its state for staff",
)
def get_(pass_id: str, ctx: CtxDep, session: SessionDep, scopes: ScopesDep, user: Manager) -> PassOut | PassPublic:
    p = _pass(session, ctx, scopes, user, pass_id)
    if p.resident == user.id and p.revoked_at is None and ctx.pass_key is not None:
        return _out(ctx, pass_claims(p))
    return _public(p, pass_gates(session, pass_ids=[p.id])[p.id], ctx.clock())


@router.post(
    "/{pass_id}/revoke",
    response_model=PassPublic,
    summary="Revoke a pass: every gate it was valid at is told (see each gate's revocation state)",
)
def revoke(pass_id: str, ctx: CtxDep, session: SessionDep, scopes: ScopesDep, user: Manager) -> PassPublic:
    p = _pass(session, ctx, scopes, user, pass_id)
    now = ctx.clock()
    was_revoked = p.revoked_at is not None
    planned = revoke_pass(session, visitor_pass=p, by=user.id, now=now)
    if not was_revoked:
        audit.record(
            session, actor=user.id, role=user.role, action=AuditAction.PASS_REVOKED, target=p.id, at=now,
            outcome=f"visitor {p.visitor_name} of {p.resident}: {planned} gates to tell",
        )  # fmt: skip
    session.commit()
    if planned and ctx.gates is not None:
        ctx.gates.kick()
    return _public(p, pass_gates(session, pass_ids=[p.id])[p.id], now)
