"""Privacy: the consent text residents agree to before face enrolment, and the audit log (admins): who viewed
snapshots and entries, who opened doors, enrolled and removed residents, what the retention job removed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from cloud.audit import AuditAction, list_audit
from cloud.db.models import User
from cloud.privacy import consent_digest
from cloud.workorders.states import Role

from ..deps import CtxDep, GateStaff, SessionDep, require

router = APIRouter(prefix="/api/v1", tags=["privacy"])


class AuditPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    role: str
    action: AuditAction
    target: str
    outcome: str


class ConsentText(BaseModel):
    version: str = Field(description="what enrolment sends as consent once the resident agreed")
    text: str
    text_sha256: str = Field(description="what the consent record keeps of it")


@router.get(
    "/privacy/consent", response_model=ConsentText, summary="The consent text to show a resident before enrolment"
)
def consent_text(ctx: CtxDep, user: GateStaff) -> ConsentText:
    c = ctx.site.privacy.current_consent
    return ConsentText(version=c.version, text=c.text, text_sha256=consent_digest(c.text))


@router.get("/audit", response_model=list[AuditPublic], summary="The audit log, newest first (admins)")
def audit_log(
    session: SessionDep,
    user: Annotated[User, Depends(require(Role.ADMIN))],
    action: Annotated[list[AuditAction] | None, Query(description="only these actions")] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    target: Annotated[str | None, Query(max_length=200, description="a gate, event, resident or pass id")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AuditPublic]:
    for t in (since, until):
        if t is not None and t.tzinfo is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "times need a time zone, e.g. ...Z")
    rows = list_audit(session, actions=action or (), actor=actor, target=target, since=since, until=until, limit=limit)
    return [AuditPublic.model_validate(r) for r in rows]
