"""Garages: the map (layout from the site config), the live state the gateways publish, the light override.

The live state comes from :class:`cloud.garages.view.GarageView` (fed by the gate link's subscription
to the garage gateways' ``state`` topics); the override is the ``lights_override`` command to the
garage's gateway, answered like a gate's remote open. Models here are garage-specific.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field

from cloud.db.models import User
from cloud.garages.view import LiveState
from cloud.gates.sync import GateUnavailable
from cloud.workorders.states import Role
from sc.config.schema import Garage, LaneKind, SensorKind
from sc.contracts.commands import CommandName, LightsOverrideArgs
from sc.contracts.messages import (
    GarageFault,
    GhostState,
    LightState,
    TrackState,
)

from ..deps import ApiContext, CtxDep, require

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["garages"])
Readers = Depends(require(Role.OPERATOR, Role.ADMIN, Role.GRID_WORKER, Role.DEPARTMENT))
ControlRoom = Depends(require(Role.OPERATOR, Role.ADMIN))

Point = tuple[float, float]


class GarageSummary(BaseModel):
    id: str
    name: str
    gateway: str
    lights: int = Field(description="lights in the site config")
    lights_full: int | None = Field(description="lights the gateway wants full now; null: no state heard")
    tracks: int | None = Field(description="cars, people and unknown movers followed now; null: no state heard")
    faults: int | None = Field(description="devices offline or in fault; null: no state heard")
    fire: bool | None = Field(description="a smoke alarm has every light full; null: no state heard")
    stale: bool = Field(description="no state, one older than a few seconds, or its gateway is offline")
    state_age_s: float | None = Field(description="seconds since the latest state was received")


class LanePublic(BaseModel):
    id: str
    kind: LaneKind
    points: list[Point] = Field(description="polyline (x, y) in metres")


class LightPublic(BaseModel):
    id: str
    x: float
    y: float
    controller: str
    group: int


class SensorPublic(BaseModel):
    id: str
    x: float
    y: float
    kind: SensorKind
    range_m: float


class BoundingBox(BaseModel):
    min_x: float
    min_y: float
    max_x: float
    max_y: float


class LiveGarage(BaseModel):
    ts: datetime = Field(description="when the gateway took it (its clock)")
    received_at: datetime
    age_s: float
    stale: bool
    lights: list[LightState] = Field(description="each light's level (%), whether it is wanted full, its override")
    tracks: list[TrackState]
    ghosts: list[GhostState]
    faults: list[GarageFault]
    fire: bool
    fire_devices: list[str]


class GarageDetail(BaseModel):
    id: str
    name: str
    gateway: str
    location: str
    lanes: list[LanePublic]
    entrances: list[Point]
    lobbies: list[Point]
    lights: list[LightPublic]
    sensors: list[SensorPublic]
    bbox: BoundingBox | None = Field(description="of every lane, light and sensor; null: nothing drawn")
    standby_pct: int
    full_pct: int
    state: LiveGarage | None = Field(description="the latest live state; null: none heard yet in this process")


class LightsOverride(LightsOverrideArgs):
    """The body of a lights override: the ``lights_override`` command's own arguments (sc/contracts/commands.py)."""


class LightsOverridden(BaseModel):
    garage: str
    command_id: str
    result: dict[str, Any] = Field(description="the gateway's answer: level, lights (how many), for_s")


def _garage(ctx: ApiContext, garage_id: str) -> Garage:
    for g in ctx.site.garages:
        if g.id == garage_id:
            return g
    raise HTTPException(
        status.HTTP_404_NOT_FOUND, f"no garage {garage_id!r} (known: {[g.id for g in ctx.site.garages]})"
    )


def _live(ctx: ApiContext, garage_id: str) -> LiveState | None:
    return ctx.garages.latest(garage_id) if ctx.garages is not None else None


@router.get("/garages", response_model=list[GarageSummary], dependencies=[Readers], summary="The site's garages")
def garages(ctx: CtxDep) -> list[GarageSummary]:
    out = []
    for g in ctx.site.garages:
        live = _live(ctx, g.id)
        st = live.state if live else None
        out.append(
            GarageSummary(
                id=g.id,
                name=g.name,
                gateway=g.gateway,
                lights=len(g.lights),
                lights_full=sum(lt.full for lt in st.lights) if st else None,
                tracks=len(st.tracks) if st else None,
                faults=len(st.faults) if st else None,
                fire=st.fire if st else None,
                stale=live.stale if live else True,
                state_age_s=live.age_s if live else None,
            )
        )
    return out


@router.get(
    "/garages/{garage_id}",
    response_model=GarageDetail,
    dependencies=[Readers],
    summary="A garage's map (lanes, lights, sensors in metres) and its latest live state",
    responses={404: {"description": "no such garage"}},
)
def garage(garage_id: str, ctx: CtxDep) -> GarageDetail:
    g = _garage(ctx, garage_id)
    points = [p for lane in g.lanes for p in lane.points] + [lt.at for lt in g.lights] + [s.at for s in g.sensors]
    bbox = (
        BoundingBox(
            min_x=min(x for x, _ in points),
            min_y=min(y for _, y in points),
            max_x=max(x for x, _ in points),
            max_y=max(y for _, y in points),
        )
        if points
        else None
    )
    live = _live(ctx, g.id)
    state = None
    if live is not None:
        st = live.state
        state = LiveGarage(
            ts=st.ts, received_at=live.received_at, age_s=live.age_s, stale=live.stale, lights=st.lights,
            tracks=st.tracks, ghosts=st.ghosts, faults=st.faults, fire=st.fire, fire_devices=st.fire_devices,
        )  # fmt: skip
    return GarageDetail(
        id=g.id, name=g.name, gateway=g.gateway, location=g.location,
        lanes=[LanePublic(id=lane.id, kind=lane.kind, points=lane.points) for lane in g.lanes],
        entrances=g.entrances, lobbies=g.lobbies,
        lights=[
            LightPublic(id=lt.id, x=lt.at[0], y=lt.at[1], controller=lt.controller, group=lt.group) for lt in g.lights
        ],
        sensors=[SensorPublic(id=s.id, x=s.at[0], y=s.at[1], kind=s.kind, range_m=s.range_m) for s in g.sensors],
        bbox=bbox, standby_pct=g.levels.standby_pct, full_pct=g.levels.full_pct, state=state,
    )  # fmt: skip


@router.post(
    "/garages/{garage_id}/lights",
    response_model=LightsOverridden,
    summary="Set lights' base level from the control room (safety still lights them full); waits for the gateway",
    responses={
        404: {"description": "no such garage"},
        502: {"description": "the gateway refused (e.g. an unknown light id)"},
        503: {"description": "this API process has no link to the gateways"},
        504: {"description": "the gateway is offline or did not answer in time"},
    },
)
def override_lights(
    garage_id: str, body: LightsOverride, ctx: CtxDep, user: Annotated[User, ControlRoom]
) -> LightsOverridden:
    g = _garage(ctx, garage_id)
    if ctx.gates is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "this API process has no link to the gateways")
    args = LightsOverrideArgs(level=body.level, lights=body.lights, for_s=body.for_s)
    timeout = ctx.door_open_timeout_s
    try:
        ack = ctx.gates.command(
            gateway=g.gateway,
            device=g.id,
            name=CommandName.LIGHTS_OVERRIDE,
            args=args,
            timeout=timeout,
            what=f"garage {g.id}",
        )
    except GateUnavailable as exc:
        raise HTTPException(status.HTTP_504_GATEWAY_TIMEOUT, f"garage {g.id} cannot be reached: {exc}") from exc
    if ack is None:
        raise HTTPException(status.HTTP_504_GATEWAY_TIMEOUT, f"garage {g.id} did not answer within {timeout:g} s")
    if not ack.ok:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"garage {g.id} refused the override: {ack.error}")
    log.info("garage=%s lights override by %s: %s -> %s", g.id, user.id, args.model_dump(exclude_none=True), ack.result)
    return LightsOverridden(garage=g.id, command_id=ack.id, result=ack.result)
