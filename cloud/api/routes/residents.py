"""Residents the gates recognise: enrol from photos (kept as a face embedding only), list, remove, sync state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, UploadFile, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cloud import audit
from cloud.audit import AuditAction
from cloud.db.models import Consent, Resident, User
from cloud.gates.enrolment import MAX_PHOTOS, PhotoError, embedding_bytes
from cloud.gates.store import (
    AlreadyEnrolled,
    ResidentNotFound,
    community_gates,
    delete_resident,
    deliveries_of,
    delivery_state,
    enrol_resident,
    list_residents,
)
from cloud.media import MediaError, checked_image
from cloud.privacy import consent_digest, forget_resident, remove_files
from cloud.workorders.routing import RoutingError
from sc.config.schema import Gate
from vision.models import ModelError

from ..deps import ApiContext, CtxDep, GateStaff, ScopesDep, SessionDep
from ..schemas import ConsentPublic, DeliveryPublic, ResidentPublic
from ..scope import Scopes

router = APIRouter(prefix="/api/v1/residents", tags=["residents and gates"])

RESIDENT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


@router.post(
    "",
    response_model=ResidentPublic,
    status_code=201,
    summary="Enrol a resident from 1-5 photos: only the face embedding is kept, then sent to every gate",
    responses={409: {"description": "already enrolled"}, 422: {"description": "a photo without exactly one face"}},
)
def enrol(
    ctx: CtxDep,
    session: SessionDep,
    user: GateStaff,
    scopes: ScopesDep,
    resident_id: Annotated[str, Form(alias="id", pattern=RESIDENT_ID, description="the resident's id")],
    name: Annotated[str, Form(min_length=1, max_length=120)],
    photos: Annotated[
        list[UploadFile], File(description=f"1-{MAX_PHOTOS} photos of the resident alone (JPEG or PNG, 5 MB each)")
    ],
    consent: Annotated[
        str,
        Form(
            max_length=64,
            description="the version of the consent text (GET /api/v1/privacy/consent) the resident agreed to",
        ),
    ],
    unit: Annotated[str | None, Form(max_length=32, description="flat or room, e.g. 3-201")] = None,
    location: Annotated[str | None, Form(description="grid-tree id of their building or stairwell")] = None,
    consent_by: Annotated[
        str | None, Form(min_length=1, max_length=120, description="who agreed, if not the resident (a guardian)")
    ] = None,
) -> ResidentPublic:
    current = ctx.site.privacy.current_consent
    if consent != current.version:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"consent {consent!r} is not the text in use: show the resident consent {current.version!r} "
            "(GET /api/v1/privacy/consent) and send its version once they agree",
        )
    if location is not None:
        try:
            ctx.router.chain(location)
        except RoutingError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    if not _in_scope(scopes, user, location):  # a property company enrols the residents of its communities
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{user.id} enrols residents of {', '.join(scopes.roots(user) or [])} only: give the building or "
            "stairwell (location) they live in there",
        )
    if not 1 <= len(photos) <= MAX_PHOTOS:  # counted before any photo is read
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"send 1 to {MAX_PHOTOS} photos of the resident (got {len(photos)})"
        )
    images: list[tuple[str, bytes]] = []
    for i, photo in enumerate(photos, 1):
        data = photo.file.read(ctx.media_max_bytes + 1)  # in memory only: never written anywhere
        what = f"photo {i} ({photo.filename})" if photo.filename else f"photo {i}"
        try:  # bytes, then pixels from the header: nothing too large is decoded
            checked_image(data, what=what, max_bytes=ctx.media_max_bytes)
        except MediaError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        images.append((photo.filename or "", data))
    try:
        vecs = ctx.enroller.embeddings(images)  # this thread-pool thread, under the engines' lock
    except PhotoError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    except ModelError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"enrolment is not set up: {exc}") from exc
    finally:
        images.clear()
    embeddings = {m: embedding_bytes(v, m) for m, v in vecs.items()}
    try:
        r = enrol_resident(
            session, resident_id=resident_id, name=name, embeddings=embeddings, photos=len(photos),
            by=user.id, now=ctx.clock(), gates=serving(ctx, location), unit=unit, location=location,
        )  # fmt: skip
        session.add(
            Consent(
                resident=r.id, version=current.version, text_sha256=consent_digest(current.text),
                given_by=consent_by or "the resident", recorded_by=user.id, at=ctx.clock(),
            )
        )  # fmt: skip
        audit.record(
            session, actor=user.id, role=user.role, action=AuditAction.RESIDENT_ENROLLED, target=r.id,
            at=ctx.clock(), outcome=f"consent {current.version} given by {consent_by or 'the resident'}",
        )  # fmt: skip
        session.commit()
    except (AlreadyEnrolled, IntegrityError) as exc:
        session.rollback()
        detail = str(exc) if isinstance(exc, AlreadyEnrolled) else f"resident {resident_id!r} is already enrolled"
        raise HTTPException(status.HTTP_409_CONFLICT, detail) from exc
    if ctx.gates is not None:
        ctx.gates.kick()
    return ResidentPublic.model_validate(r)


@router.get("", response_model=list[ResidentPublic], summary="Enrolled residents (no embeddings)")
def list_(
    session: SessionDep, user: GateStaff, scopes: ScopesDep, include_deleted: bool = False
) -> list[ResidentPublic]:
    """Residents of your communities (the control room: all)."""
    rows = list_residents(session, include_deleted=include_deleted, locations=scopes.locations(user))
    return [ResidentPublic.model_validate(r) for r in rows]


def serving(ctx: ApiContext, location: str | None) -> list[Gate]:
    """The gates a resident living at ``location`` goes to: their own community's (cloud/gates/store.py)."""
    serves = community_gates(ctx.site)
    return [g for g in ctx.site.gates if serves(g, location)]


def _in_scope(scopes: Scopes, user: User, location: str | None) -> bool:
    locs = scopes.locations(user)
    return locs is None or (location is not None and location in locs)


def _resident(session: SessionDep, resident_id: str, scopes: Scopes, user: User) -> Resident:
    r = session.get(Resident, resident_id)
    if r is None or not _in_scope(scopes, user, r.location):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no resident {resident_id!r} in your communities")
    return r


@router.get("/{resident_id}", response_model=ResidentPublic, summary="One resident (no embedding)")
def get(resident_id: str, session: SessionDep, user: GateStaff, scopes: ScopesDep) -> ResidentPublic:
    return ResidentPublic.model_validate(_resident(session, resident_id, scopes, user))


@router.delete(
    "/{resident_id}",
    response_model=ResidentPublic,
    summary="Remove a resident: the embedding is deleted here and at every gate (a tombstone version remains)",
)
def remove(resident_id: str, ctx: CtxDep, session: SessionDep, user: GateStaff, scopes: ScopesDep) -> ResidentPublic:
    _resident(session, resident_id, scopes, user)  # another community's resident: not yours to remove
    now = ctx.clock()
    try:
        r = delete_resident(session, resident_id=resident_id, now=now, gates=ctx.site.gates)  # where it was sent
    except ResidentNotFound as exc:
        session.rollback()
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    snapshots = forget_resident(session, resident=r, now=now)  # no name, consent withdrawn, their face crops
    audit.record(
        session, actor=user.id, role=user.role, action=AuditAction.RESIDENT_REMOVED, target=r.id, at=now,
        outcome=f"embedding deleted, {len(snapshots)} snapshots removed",
    )  # fmt: skip
    session.commit()
    remove_files(ctx.media_dir, snapshots)
    if ctx.gates is not None:
        ctx.gates.kick()
    return ResidentPublic.model_validate(r)


@router.get(
    "/{resident_id}/consent",
    response_model=list[ConsentPublic],
    summary="The resident's consent records: which text, who agreed, who enrolled them, when, withdrawn when",
)
def consents(resident_id: str, session: SessionDep, user: GateStaff, scopes: ScopesDep) -> list[ConsentPublic]:
    _resident(session, resident_id, scopes, user)
    rows = session.execute(select(Consent).where(Consent.resident == resident_id).order_by(Consent.at, Consent.id))
    return [ConsentPublic.model_validate(c) for c in rows.scalars()]


@router.get(
    "/{resident_id}/sync",
    response_model=list[DeliveryPublic],
    summary="Whether each gate has the resident's newest version: pending, acked or error",
)
def sync_state(
    resident_id: str, ctx: CtxDep, session: SessionDep, user: GateStaff, scopes: ScopesDep
) -> list[DeliveryPublic]:
    _resident(session, resident_id, scopes, user)
    online = ctx.gates.online if ctx.gates is not None else {}
    return [
        DeliveryPublic(
            gate=d.gate,
            gateway=d.gateway,
            gateway_online=online.get(d.gateway),
            op=d.op,
            version=d.version,
            state=delivery_state(d).value,
            attempts=d.attempts,
            sent_at=d.sent_at,
            acked_at=d.acked_at,
            error=d.error,
        )
        for d in deliveries_of(session, resident_id=resident_id)
    ]
