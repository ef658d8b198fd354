"""What the API takes and returns. Separate from the tables: no row is ever returned as is."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cloud.workorders.states import Action

__all__ = [
    "ActionRequest",
    "ConsentPublic",
    "DeliveryPublic",
    "DevicePublic",
    "DeviceReadings",
    "DoorOpened",
    "EntryPublic",
    "EventPublic",
    "GroupStats",
    "HistoryPublic",
    "ReadingSeries",
    "ResidentPublic",
    "SignedOut",
    "SiteNode",
    "SitePublic",
    "SiteRef",
    "Token",
    "UserPublic",
    "WorkOrderDetail",
    "WorkOrderPublic",
    "WorkerPublic",
]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds")


class UserPublic(_Out):
    id: str
    name: str
    role: str
    department: str | None
    location: str | None


class DevicePublic(_Out):
    id: str
    gateway: str
    is_gateway: bool
    online: bool | None = Field(description="null: not known yet; a device is unknown while its gateway is offline")
    status_reason: str
    status_since: datetime | None
    last_seen: datetime | None
    last_reading: dict[str, Any] | None
    location: str | None = None
    type: str | None = None


class ReadingSeries(_Out):
    field: str = Field(description="a reading field, e.g. smoke_density, fill_pct, battery_pct, alarm")
    aggregate: str = Field(description="mean (numbers) or max (flags: 1 when set at any time in the bucket)")
    points: list[tuple[datetime, float | None]] = Field(
        description="[bucket start, value], oldest first; null: no reading in that bucket"
    )


class DeviceReadings(_Out):
    device: str
    since: datetime
    until: datetime
    bucket_s: int = Field(description="seconds per point; buckets start at since")
    series: list[ReadingSeries] = Field(description="one per field with a value in the range; empty: no readings")


class EventPublic(_Out):
    id: str
    gateway: str
    device: str
    seq: int
    ts: datetime
    received_at: datetime
    kind: str
    state: str
    severity: str
    payload: dict[str, Any]
    work_order_id: int | None


class HistoryPublic(_Out):
    at: datetime
    actor: str
    role: str
    action: str
    from_status: str | None
    to_status: str | None
    note: str
    data: dict[str, Any] | None


class WorkOrderPublic(_Out):
    id: int
    source: str
    device: str | None
    kind: str
    category: str
    subcategory: str
    severity: str
    status: str
    title: str
    description: str
    location: str
    grid: str | None
    community: str | None
    street: str
    department: str
    assignee: str | None
    reporter: str | None
    escalation_level: int
    escalated_to: str | None
    alarm_count: int
    last_reading: dict[str, Any] | None
    cleared_at: datetime | None
    created_at: datetime
    updated_at: datetime
    respond_by: datetime
    resolve_by: datetime
    responded_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    reopen_count: int
    rating: int | None
    rating_comment: str | None
    media_url: str | None
    snapshot_url: str | None = Field(default=None, description="the newest gate snapshot of it (JPEG)")
    acknowledged_at: datetime | None = Field(default=None, description="when the control room acknowledged the alarm")
    acknowledged_by: str | None = None


class WorkOrderDetail(WorkOrderPublic):
    history: list[HistoryPublic]
    events: list[EventPublic]
    actions: list[Action] = Field(default=[], description="what the signed-in user may do to it now")


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
    note: str = Field(default="", max_length=2000)
    assignee: str | None = Field(default=None, description="dispatch: the worker id")
    department: str | None = Field(default=None, description="dispatch: the department id")
    rating: int | None = Field(default=None, ge=1, le=5, description="close: 1-5")
    comment: str | None = Field(default=None, max_length=2000)


class SignedOut(BaseModel):
    user: str
    tokens: int = Field(description="how many tokens were revoked")


class GroupStats(BaseModel):
    key: str
    orders: int
    responded: int
    resolved: int
    closed: int
    avg_response_min: float | None
    avg_resolution_min: float | None
    response_deadline_met_pct: float | None
    resolution_deadline_met_pct: float | None
    escalated: int
    reopen_rate_pct: float | None
    avg_rating: float | None
    ratings: int


class EntryPublic(BaseModel):
    event_id: str
    gate: str
    gateway: str
    ts: datetime = Field(description="when it happened at the gate")
    received_at: datetime
    kind: str = Field(description="entry | entry_refused")
    granted: bool
    method: str | None = Field(description="face | pass | remote | card")
    person: str | None = Field(description="resident id, 'visitor:<name>', or who opened remotely")
    distance: float | None = Field(description="face: embedding distance to the match")
    reason: str
    snapshot_url: str | None


class ResidentPublic(_Out):
    """A resident as the API shows them: never the embedding."""

    id: str
    name: str
    unit: str | None
    location: str | None
    version: int = Field(description="grows with every change; what the gates hold")
    photos: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


class ConsentPublic(_Out):
    """A consent record: which text (version and the SHA-256 of its words), who agreed, who recorded it."""

    version: str
    text_sha256: str
    given_by: str
    recorded_by: str
    at: datetime
    withdrawn_at: datetime | None


class DeliveryPublic(BaseModel):
    gate: str
    gateway: str
    gateway_online: bool | None = Field(description="its retained status, as this process last heard it")
    op: str = Field(description="put | delete")
    version: int
    state: str = Field(description="pending | acked | error (retried with backoff)")
    attempts: int
    sent_at: datetime | None
    acked_at: datetime | None
    error: str | None


class DoorOpened(BaseModel):
    gate: str
    command_id: str
    result: dict[str, Any]


class SiteNode(BaseModel):
    id: str
    name: str
    level: str = Field(description="street | community | micro_grid | building | stairwell | a place type")
    parent: str | None


class SiteRef(BaseModel):
    id: str
    name: str
    kind: str


class WorkerPublic(BaseModel):
    id: str
    name: str
    department: str
    grids: list[str]


class SitePublic(BaseModel):
    id: str
    name: str
    timezone: str
    tree: list[SiteNode] = Field(description="the grid tree, parents before children")
    departments: list[SiteRef]
    workers: list[WorkerPublic]
    gates: list[SiteRef]
    garages: list[SiteRef]
