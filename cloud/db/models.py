"""The cloud's tables (SQLAlchemy 2). Schema changes go through Alembic
migrations in ``cloud/db/migrations``; this module is what they migrate to.

Guarantees kept by the database itself, not by check-then-insert code:

* ``events.id`` is the primary key: an event id is stored once, whichever
  ingester sees it and however often it is delivered.
* ``work_orders.open_key`` is unique: ``"{device}:{kind}"`` while the order
  is active, NULL once closed. Two copies of an alarm arriving on two
  ingesters at once cannot open two orders; after a close, the next alarm
  opens a new one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cloud.gates.snapshots import snapshot_url

__all__ = [
    "ApiToken",
    "AuditRecord",
    "Base",
    "Consent",
    "DeadLetter",
    "DeviceState",
    "Entry",
    "EventRow",
    "GalleryDelivery",
    "PassGate",
    "Resident",
    "ResidentEmbedding",
    "User",
    "VisitorPass",
    "WorkOrder",
    "WorkOrderHistory",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JsonType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JsonType}


class EventRow(Base):
    """Every event a gateway sent, once."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    gateway: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    ts: Mapped[datetime] = mapped_column(doc="edge time")
    received_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]]
    work_order_id: Mapped[int | None] = mapped_column(ForeignKey("work_orders.id"), index=True)
    snapshot: Mapped[str | None] = mapped_column(String(200), doc="its JPEG snapshot, a path under media_dir")

    __table_args__ = (Index("ix_events_received_at", "received_at"),)


class DeadLetter(Base):
    """A message that could not be used, with the reason and the start of its raw bytes.

    ``payload`` keeps at most the first ``DEAD_LETTER_PAYLOAD_BYTES`` (4 KiB) of the message, ``size`` is the
    message's whole size; only the newest ``DEAD_LETTERS_KEEP`` rows are kept (cloud/workorders/store.py).
    """

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime]
    topic: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary, doc="the first bytes of the message (at most 4 KiB)")
    size: Mapped[int] = mapped_column(Integer, doc="the message's size in bytes, all of it")


class DeviceState(Base):
    """What the control room knows of each gateway and device right now."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    gateway: Mapped[str] = mapped_column(String(64), index=True)
    is_gateway: Mapped[bool] = mapped_column(default=False)
    online: Mapped[bool | None]
    status_reason: Mapped[str] = mapped_column(Text, default="")
    status_since: Mapped[datetime | None]
    last_seen: Mapped[datetime | None]
    last_reading: Mapped[dict[str, Any] | None]
    updated_at: Mapped[datetime]


class WorkOrder(Base):
    __tablename__ = "work_orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16), doc="device | resident | patrol")
    open_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    device: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(64), doc="event kind or Open311 service code")
    category: Mapped[str] = mapped_column(String(32), index=True)
    subcategory: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    title: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(String(64))
    grid: Mapped[str | None] = mapped_column(String(64), index=True)
    community: Mapped[str | None] = mapped_column(String(64), index=True)
    street: Mapped[str] = mapped_column(String(64))
    department: Mapped[str] = mapped_column(String(64), index=True)
    assignee: Mapped[str | None] = mapped_column(String(64), index=True)
    reporter: Mapped[str | None] = mapped_column(String(64), doc="resident user id for reports")
    escalation_level: Mapped[int] = mapped_column(default=0)
    escalated_to: Mapped[str | None] = mapped_column(String(64))
    next_escalation_at: Mapped[datetime | None] = mapped_column(index=True)
    alarm_count: Mapped[int] = mapped_column(default=1)
    first_event_id: Mapped[str | None] = mapped_column(String(64))
    last_event_id: Mapped[str | None] = mapped_column(String(64))
    last_reading: Mapped[dict[str, Any] | None]
    cleared_at: Mapped[datetime | None] = mapped_column(doc="the device said the condition ended")
    created_at: Mapped[datetime] = mapped_column(index=True, doc="when it was opened (what the figures select by)")
    updated_at: Mapped[datetime]
    respond_by: Mapped[datetime]
    resolve_by: Mapped[datetime]
    responded_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    reopen_count: Mapped[int] = mapped_column(default=0)
    rating: Mapped[int | None]
    rating_comment: Mapped[str | None] = mapped_column(Text)
    media_url: Mapped[str | None] = mapped_column(Text)
    snapshot_event_id: Mapped[str | None] = mapped_column(String(64), doc="the newest alarm of it with a snapshot")
    acknowledged_at: Mapped[datetime | None] = mapped_column(doc="the control room saw the alarm")
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))

    @property
    def snapshot_url(self) -> str | None:
        return snapshot_url(self.snapshot_event_id) if self.snapshot_event_id else None


class WorkOrderHistory(Base):
    """Who did what to an order, and when: never updated, only appended."""

    __tablename__ = "work_order_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any] | None]


class User(Base):
    """A person who uses the API: control room, grid worker, department, resident, admin.

    A grid worker's id is their worker id in the site config, which is how
    orders are assigned to them.
    """

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    department: Mapped[str | None] = mapped_column(String(64))
    location: Mapped[str | None] = mapped_column(String(64), doc="a resident's home stairwell or building")
    password_hash: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Entry(Base):
    """A gate's record of who came in (``entry``) or was turned away (``entry_refused``): never a work order.

    Keyed by the event id, so a redelivered event is recorded once.
    """

    __tablename__ = "entries"

    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    gateway: Mapped[str] = mapped_column(String(64))
    gate: Mapped[str] = mapped_column(String(64))
    ts: Mapped[datetime] = mapped_column(doc="edge time")
    received_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    method: Mapped[str | None] = mapped_column(String(16), doc="face | pass | remote | card")
    person: Mapped[str | None] = mapped_column(String(120), doc="resident id, 'visitor:<name>', or who opened")
    distance: Mapped[float | None] = mapped_column(Float, doc="face: embedding distance to the match")
    granted: Mapped[bool]
    reason: Mapped[str] = mapped_column(Text, default="")
    snapshot: Mapped[str | None] = mapped_column(String(200), doc="a path under media_dir")

    __table_args__ = (Index("ix_entries_ts", "ts"), Index("ix_entries_gate_ts", "gate", "ts"))


class Resident(Base):
    """A resident the gates recognise: a face embedding per face model (:class:`ResidentEmbedding`), never a photo.

    ``version`` grows with every change (microseconds, strictly increasing per
    resident); a removal drops the embeddings and keeps the row as a tombstone
    whose version tells every gate to delete theirs.
    """

    __tablename__ = "residents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    unit: Mapped[str | None] = mapped_column(String(32), doc="flat / room, free text")
    location: Mapped[str | None] = mapped_column(String(64), doc="grid-tree id: building or stairwell")
    version: Mapped[int] = mapped_column(BigInteger)
    photos: Mapped[int] = mapped_column(default=0, doc="how many photos the embedding was made from")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class ResidentEmbedding(Base):
    """A resident's face embedding made by one face model (the contracts' ``EmbeddingModel``): unit length,
    little-endian float32, as many as the model's ``EMBEDDING_DIMS``. Enrolment makes one per model the site's
    gates use; a removal deletes them all."""

    __tablename__ = "resident_embeddings"

    resident: Mapped[str] = mapped_column(ForeignKey("residents.id"), primary_key=True)
    model: Mapped[str] = mapped_column(String(40), primary_key=True)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)


class GalleryDelivery(Base):
    """The newest change of one resident on its way to one gate (a gallery_put or gallery_delete).

    One row per resident and gate: a newer change replaces the row's op,
    version and command id. ``next_attempt_at`` is when to send (again);
    NULL once the gate acknowledged it.
    """

    __tablename__ = "gallery_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resident: Mapped[str] = mapped_column(ForeignKey("residents.id"), index=True)
    gateway: Mapped[str] = mapped_column(String(64))
    gate: Mapped[str] = mapped_column(String(64))
    op: Mapped[str] = mapped_column(String(8), doc="put | delete")
    version: Mapped[int] = mapped_column(BigInteger)
    command_id: Mapped[str] = mapped_column(String(64), unique=True, doc="the same for every resend of a version")
    planned_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    acked_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    error: Mapped[str | None] = mapped_column(Text, doc="the gate's answer when it could not apply it")
    attempts: Mapped[int] = mapped_column(default=0)

    __table_args__ = (UniqueConstraint("resident", "gate", name="uq_gallery_deliveries_resident_gate"),)


class VisitorPass(Base):
    """A visitor pass the cloud signed: who invited whom, to which gates, when, how many entries.

    The claims are kept as signed, so the same token (Ed25519 signatures are
    deterministic) can be shown again to the resident who made it.
    """

    __tablename__ = "visitor_passes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, doc="the pass's pid")
    site: Mapped[str] = mapped_column(String(64))
    resident: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True, doc="the user who invited")
    visitor_name: Mapped[str] = mapped_column(String(64))
    gates: Mapped[list[str]] = mapped_column(JsonType, doc="gate ids, in the order signed")
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime]
    uses: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(64))


class PassGate(Base):
    """One gate of a pass, and once the pass is revoked the ``pass_revoke`` on its way there.

    ``command_id`` and ``next_attempt_at`` are set when the revocation is
    planned; ``acked_at`` when the gate confirmed it.
    """

    __tablename__ = "pass_gates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pass_id: Mapped[str] = mapped_column(ForeignKey("visitor_passes.id"), index=True)
    gate: Mapped[str] = mapped_column(String(64), index=True)
    gateway: Mapped[str] = mapped_column(String(64))
    command_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    planned_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    acked_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)

    __table_args__ = (UniqueConstraint("pass_id", "gate", name="uq_pass_gates_pass_gate"),)


class Consent(Base):
    """A resident's consent to face entry, recorded at enrolment: who enrolled whom, when, with which text.

    Kept after the resident is removed (``withdrawn_at``), as the record of what was agreed and when it ended.
    """

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resident: Mapped[str] = mapped_column(ForeignKey("residents.id"), index=True)
    version: Mapped[str] = mapped_column(String(64), doc="the consent text's version in the site config")
    text_sha256: Mapped[str] = mapped_column(String(64), doc="of the exact text agreed to")
    given_by: Mapped[str] = mapped_column(String(120), doc="the resident, or who agreed for them (a guardian)")
    recorded_by: Mapped[str] = mapped_column(String(64), doc="the user who enrolled them")
    at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None]


class AuditRecord(Base):
    """Who did what to whom: snapshot views, remote opens, enrolments and removals. Only ever appended."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str] = mapped_column(String(200), doc="the event, gate, resident or pass acted on")
    outcome: Mapped[str] = mapped_column(Text, default="")
