"""Resident reports (报事报修) shaped after Open311 GeoReport v2, so civic tools can talk to it.

The QR code on a stairwell door carries that stairwell's id: the resident's
app posts it as ``address_id``. Errors use GeoReport's shape
``[{"code": 400, "description": "..."}]``.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel
from sqlalchemy import func, select

from cloud.db.models import WorkOrder
from cloud.media import MediaError, clean_jpeg
from cloud.workorders.catalogue import SERVICES
from cloud.workorders.queries import visible
from cloud.workorders.routing import RoutingError
from cloud.workorders.states import BadRequest, Role, Status
from cloud.workorders.store import create_report

from ..deps import CtxDep, CurrentUser, RowId, SessionDep, require

#: Reports with a photo one user may file in a day (the photos share the disk with the database).
PHOTOS_PER_DAY = 20

router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"])


class ServiceOut(BaseModel):
    service_code: str
    service_name: str
    description: str
    metadata: bool = False
    type: Literal["realtime"] = "realtime"
    keywords: str
    group: str


class RequestCreated(BaseModel):
    service_request_id: str
    service_notice: str
    account_id: str | None = None


class RequestOut(BaseModel):
    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str
    service_name: str
    service_code: str
    description: str
    agency_responsible: str
    service_notice: str
    requested_datetime: datetime
    updated_datetime: datetime
    expected_datetime: datetime
    address: str
    address_id: str
    media_url: str | None


def _error(code: int, description: str) -> JSONResponse:
    return JSONResponse(status_code=code, content=[{"code": code, "description": description}])


@router.get("/services.json", response_model=list[ServiceOut], summary="What can be reported")
def services() -> list[ServiceOut]:
    return [
        ServiceOut(
            service_code=s.code,
            service_name=s.name,
            description=f"{s.group}: {s.name}",
            keywords=f"{s.category},{s.code}",
            group=s.group,
        )
        for s in SERVICES.values()
    ]


def _names(ctx: CtxDep) -> dict[str, str]:
    out: dict[str, str] = {}
    st = ctx.site.street
    out[st.id] = st.name
    for c in st.communities:
        out[c.id] = c.name
        for m in c.micro_grids:
            out[m.id] = m.name
            for b in m.buildings:
                out[b.id] = b.name
                for s in b.stairwells:
                    out[s.id] = f"{b.name} {s.name}"
            for p in m.places:
                out[p.id] = p.name
    return out


def _out(ctx: CtxDep, o: WorkOrder, names: dict[str, str]) -> RequestOut:
    service = SERVICES.get(o.kind)
    closed = o.status in (Status.RESOLVED.value, Status.CLOSED.value)
    dept = next((d.name for d in ctx.site.departments if d.id == o.department), o.department)
    return RequestOut(
        service_request_id=str(o.id), status="closed" if closed else "open", status_notes=o.status,
        service_name=service.name if service else o.kind, service_code=o.kind, description=o.description,
        agency_responsible=dept, service_notice=f"respond by {o.respond_by:%Y-%m-%d %H:%M} UTC",
        requested_datetime=o.created_at, updated_datetime=o.updated_at, expected_datetime=o.resolve_by,
        address=names.get(o.location, o.location), address_id=o.location, media_url=o.media_url,
    )  # fmt: skip


@router.post(
    "/requests.json",
    response_model=list[RequestCreated],
    summary="File a report against a place (address_id: the id in the stairwell's QR code)",
    responses={400: {"description": "unknown service_code or address_id"}},
)
def create_request(
    ctx: CtxDep,
    session: SessionDep,
    user: Annotated[CurrentUser, Depends(require(Role.RESIDENT, Role.OPERATOR, Role.ADMIN, Role.GRID_WORKER))],
    service_code: Annotated[str, Form()],
    address_id: Annotated[str, Form(description="grid-tree id of the place, e.g. a stairwell")],
    description: Annotated[str, Form(max_length=4000)] = "",
    media_url: Annotated[str | None, Form(max_length=2000)] = None,
    media: Annotated[UploadFile | None, File(description="a photo (JPEG or PNG, at most 5 MB)")] = None,
) -> list[RequestCreated] | JSONResponse:
    photo: bytes | None = None
    name = ""
    if media is not None and media.filename:
        try:  # checked (bytes, then pixels from the header) before it is decoded; kept without its EXIF
            photo = clean_jpeg(media.file.read(ctx.media_max_bytes + 1), what="media", max_bytes=ctx.media_max_bytes)
        except MediaError as exc:
            return _error(400, str(exc))
        recent = session.execute(
            select(func.count()).where(
                WorkOrder.reporter == user.id,
                WorkOrder.media_url.is_not(None),
                WorkOrder.created_at >= ctx.clock() - timedelta(days=1),
            )
        ).scalar_one()
        if recent >= PHOTOS_PER_DAY:
            return _error(429, f"at most {PHOTOS_PER_DAY} reports with a photo a day: send this one without")
        name = f"{secrets.token_hex(16)}.jpg"
        media_url = f"/media/{name}"
    try:
        order = create_report(
            session, router=ctx.router, service_code=service_code, location=address_id, description=description,
            reporter=user.id, now=ctx.clock(), media_url=media_url,
        )  # fmt: skip
    except (BadRequest, RoutingError) as exc:
        session.rollback()
        return _error(400, str(exc))
    if photo is not None:  # written only once the report is valid: a refused request leaves nothing
        ctx.media_dir.mkdir(parents=True, exist_ok=True)
        (ctx.media_dir / name).write_bytes(photo)
    try:
        session.commit()
    except Exception:
        if photo is not None:
            (ctx.media_dir / name).unlink(missing_ok=True)
        raise
    notice = f"routed to {order.department}; first response by {order.respond_by:%Y-%m-%d %H:%M} UTC"
    return [RequestCreated(service_request_id=str(order.id), service_notice=notice, account_id=user.id)]


media_router = APIRouter(tags=["Open311 GeoReport v2"])


@media_router.get("/media/{name}", response_model=None, summary="A photo attached to a report (signed-in users)")
def get_media(name: str, ctx: CtxDep, user: CurrentUser) -> FileResponse | JSONResponse:
    if not re.fullmatch(r"[0-9a-f]{32}\.(jpg|png)", name):
        return _error(404, "no such photo")
    path = ctx.media_dir / name
    if not path.is_file():
        return _error(404, "no such photo")
    return FileResponse(path, media_type="image/jpeg" if name.endswith(".jpg") else "image/png")


@router.get("/requests.json", response_model=list[RequestOut], summary="Reports you may see")
def list_requests(
    ctx: CtxDep,
    session: SessionDep,
    user: CurrentUser,
    status: Literal["open", "closed"] | None = None,
    service_code: str | None = None,
) -> list[RequestOut]:
    q = select(WorkOrder).where(WorkOrder.source == "resident", visible(ctx.site, user)).order_by(WorkOrder.id.desc())
    if service_code is not None:
        q = q.where(WorkOrder.kind == service_code)
    names = _names(ctx)
    out = [_out(ctx, o, names) for o in session.execute(q.limit(1000)).scalars()]
    return [r for r in out if status is None or r.status == status]


@router.get("/requests/{request_id}.json", response_model=list[RequestOut], summary="One report")
def get_request(
    request_id: RowId, ctx: CtxDep, session: SessionDep, user: CurrentUser
) -> list[RequestOut] | JSONResponse:
    q = select(WorkOrder).where(WorkOrder.id == request_id, WorkOrder.source == "resident", visible(ctx.site, user))
    o = session.execute(q).scalar_one_or_none()
    if o is None:
        return _error(404, f"no request {request_id} that you may see")
    return [_out(ctx, o, _names(ctx))]
