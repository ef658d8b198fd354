"""The gates' data layer: keyword-only functions over a SQLAlchemy session (the caller owns the transaction).

* Entries: :func:`add_entries` (from the ingester, exactly once per event id), :func:`list_entries`.
* Residents: :func:`enrol_resident`, :func:`delete_resident` (a tombstone stays), :func:`list_residents`.
  Each change gets a new, strictly larger version and plans its delivery to every gate in the same
  transaction, so the sync never misses one.
* Gallery deliveries, one row per resident and gate: :func:`plan_deliveries`, :func:`reconcile_deliveries`
  (gates added to the config later), :func:`due_deliveries`, :func:`mark_sent`, :func:`mark_acked`,
  :func:`resend_gateway`, :func:`deliveries_of`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from cloud.db.engine import dialect_insert
from cloud.db.models import Entry, GalleryDelivery, Resident, ResidentEmbedding
from sc.config.schema import Gate, SiteConfig
from sc.contracts.commands import EmbeddingModel
from sc.contracts.messages import Event, EventKind, GatePayload, new_id

__all__ = [
    "AlreadyEnrolled",
    "Delivery",
    "DeliveryState",
    "Op",
    "ResidentNotFound",
    "add_entries",
    "backoff",
    "delete_resident",
    "deliveries_of",
    "delivery_state",
    "due_deliveries",
    "embedding_of",
    "enrol_resident",
    "in_flight",
    "list_entries",
    "list_residents",
    "mark_acked",
    "mark_sent",
    "next_version",
    "plan_deliveries",
    "reconcile_deliveries",
    "resend_gateway",
    "settle",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ResidentNotFound(LookupError):
    pass


class AlreadyEnrolled(ValueError):
    pass


class Op(StrEnum):
    PUT = "put"
    DELETE = "delete"


class DeliveryState(StrEnum):
    PENDING = "pending"  # not yet acknowledged by the gate (not sent, sent, or waiting for the gateway)
    ACKED = "acked"  # the gate has it
    ERROR = "error"  # the gate answered that it could not apply it; retried with backoff


# --------------------------------------------------------------------------- entries


def add_entries(session: Session, *, events: list[Event], snapshots: dict[str, str], now: datetime) -> int:
    """Record gate entry events (``entry``, ``entry_refused``); an event id already recorded is skipped."""
    rows: list[dict[str, Any]] = []
    for ev in events:
        p = ev.payload
        gp = p if isinstance(p, GatePayload) else None
        rows.append(
            {
                "event_id": ev.id,
                "site": ev.site,
                "gateway": ev.gateway,
                "gate": gp.gate if gp else ev.device,
                "ts": ev.ts,
                "received_at": now,
                "kind": ev.kind.value,
                "method": gp.method.value if gp and gp.method else None,
                "person": gp.person if gp else None,
                "distance": gp.distance if gp else None,
                "granted": ev.kind is EventKind.ENTRY,
                "reason": gp.reason if gp else getattr(p, "reason", ""),
                "snapshot": snapshots.get(ev.id),
            }
        )
    if not rows:
        return 0
    ins = dialect_insert(session, Entry).values(rows).on_conflict_do_nothing(index_elements=["event_id"])
    return len(session.execute(ins.returning(Entry.event_id)).all())


def list_entries(
    session: Session,
    *,
    gate: str | None = None,
    since: datetime | None = None,
    limit: int = 200,
    gates: Collection[str] | None = None,
) -> list[Entry]:
    """Entries newest first (edge time), of ``gates`` only if given."""
    q = select(Entry).order_by(Entry.ts.desc(), Entry.event_id.desc()).limit(limit)
    if gates is not None:
        q = q.where(Entry.gate.in_(sorted(gates)))
    if gate is not None:
        q = q.where(Entry.gate == gate)
    if since is not None:
        q = q.where(Entry.ts >= since)
    return list(session.execute(q).scalars())


# --------------------------------------------------------------------------- residents


def next_version(previous: int | None, now: datetime) -> int:
    """Microseconds since 1970, and always larger than ``previous``."""
    return max((now - _EPOCH) // timedelta(microseconds=1), (previous or 0) + 1)


def enrol_resident(
    session: Session,
    *,
    resident_id: str,
    name: str,
    embeddings: Mapping[EmbeddingModel, bytes],
    photos: int,
    by: str,
    now: datetime,
    gates: Sequence[Gate],
    unit: str | None = None,
    location: str | None = None,
) -> Resident:
    """Enrol a resident (or enrol again one who was removed) with an embedding per face model;
    :class:`AlreadyEnrolled` if they are enrolled."""
    r = session.get(Resident, resident_id, with_for_update=True)
    if r is not None and r.deleted_at is None:
        raise AlreadyEnrolled(f"resident {resident_id!r} is already enrolled: remove them first to enrol again")
    version = next_version(r.version if r is not None else None, now)
    if r is None:
        r = Resident(id=resident_id)
        session.add(r)
    r.name, r.unit, r.location, r.photos = name, unit, location, photos
    r.version, r.created_by, r.created_at, r.updated_at, r.deleted_at = version, by, now, now, None
    session.flush()
    session.execute(delete(ResidentEmbedding).where(ResidentEmbedding.resident == r.id))
    session.add_all(ResidentEmbedding(resident=r.id, model=m.value, embedding=e) for m, e in embeddings.items())
    session.flush()
    plan_deliveries(session, resident=r, gates=gates, now=now)
    return r


def embedding_of(session: Session, *, resident_id: str, model: EmbeddingModel) -> bytes | None:
    """The resident's embedding made by ``model`` (None: none, e.g. enrolled before the site used that model)."""
    row = session.get(ResidentEmbedding, (resident_id, model.value))
    return row.embedding if row is not None else None


def delete_resident(session: Session, *, resident_id: str, now: datetime, gates: Sequence[Gate]) -> Resident:
    """Remove a resident's embedding; the row stays as a tombstone whose version the gates delete by."""
    r = session.get(Resident, resident_id, with_for_update=True)
    if r is None or r.deleted_at is not None:
        raise ResidentNotFound(f"no enrolled resident {resident_id!r}")
    session.execute(delete(ResidentEmbedding).where(ResidentEmbedding.resident == r.id))
    r.version = next_version(r.version, now)
    r.updated_at = r.deleted_at = now
    session.flush()
    plan_deliveries(session, resident=r, gates=gates, now=now)
    return r


def list_residents(
    session: Session, *, include_deleted: bool = False, locations: Collection[str] | None = None
) -> list[Resident]:
    """Residents by id; of ``locations`` only if given (a resident with no location is in none)."""
    q = select(Resident).order_by(Resident.id)
    if locations is not None:
        q = q.where(Resident.location.in_(sorted(locations)))
    if not include_deleted:
        q = q.where(Resident.deleted_at.is_(None))
    return list(session.execute(q).scalars())


# --------------------------------------------------------------------------- deliveries


def plan_deliveries(session: Session, *, resident: Resident, gates: Sequence[Gate], now: datetime) -> int:
    """Make the resident's current version due at every gate that lacks it; returns how many were planned.

    A removal is only sent to gates that were sent the resident before.
    """
    op = Op.DELETE if resident.deleted_at is not None else Op.PUT
    have = {
        d.gate: d
        for d in session.execute(
            select(GalleryDelivery).where(GalleryDelivery.resident == resident.id).with_for_update()
        ).scalars()
    }
    planned = 0
    for g in gates:
        d = have.get(g.id)
        if d is None:
            if op is Op.DELETE:
                continue
            d = GalleryDelivery(resident=resident.id, gate=g.id)
            session.add(d)
        elif d.version >= resident.version:
            continue
        d.gateway, d.op, d.version, d.command_id, d.planned_at = g.gateway, op.value, resident.version, new_id(), now
        d.sent_at = d.acked_at = None
        d.error = None
        d.attempts = 0
        d.next_attempt_at = now
        planned += 1
    session.flush()
    return planned


#: Which gates a resident's face goes to: (gate, the resident's location) -> whether that gate serves them.
Serves = Callable[[Gate, str | None], bool]


def community_gates(site: SiteConfig) -> Serves:
    """The gates of the resident's own community (a resident with no location, or a gate outside any
    community, at street level: every gate): a face opens its own community's doors, not the neighbours'."""
    communities = site.street.communities
    # a location's key path starts ("street", "communities", <index>, ...) when it is in a community
    community = {loc: communities[int(path[2])].id for loc, path in site.locations() if len(path) > 2}

    def serves(gate: Gate, location: str | None) -> bool:
        if location is None:
            return True
        gc, rc = community.get(gate.location), community.get(location)
        return gc is None or rc is None or gc == rc

    return serves


def gates_for(resident: Resident, gates: Sequence[Gate], serves: Serves | None) -> list[Gate]:
    return [g for g in gates if serves is None or serves(g, resident.location)]


def reconcile_deliveries(
    session: Session, *, gates: Sequence[Gate], now: datetime, serves: Serves | None = None
) -> int:
    """Plan what any gate lacks (a gate added to the config, a change planned by an older version), to the gates
    that serve each resident (``serves``; default: all)."""
    stale: set[str] = set()
    for g in gates:
        d = GalleryDelivery
        q = (
            select(Resident.id)
            .outerjoin(d, and_(d.resident == Resident.id, d.gate == g.id))
            .where(
                or_(
                    and_(d.id.is_(None), Resident.deleted_at.is_(None)),
                    d.version < Resident.version,
                )
            )
        )
        stale |= set(session.execute(q).scalars())
    planned = 0
    for rid in sorted(stale):
        r = session.get(Resident, rid)
        if r is not None:
            planned += plan_deliveries(session, resident=r, gates=gates_for(r, gates, serves), now=now)
    return planned


def backoff(attempts: int, *, base_s: float, max_s: float) -> timedelta:
    """How long after the ``attempts``-th send to wait for its ack (or to retry after a refusal)."""
    return timedelta(seconds=min(max_s, base_s * 2 ** max(0, attempts - 1)))


def due_deliveries(
    session: Session, *, now: datetime, gateways: Sequence[str], gates: Sequence[str], limit: int = 200
) -> list[tuple[GalleryDelivery, Resident]]:
    """Deliveries to send now, to the given (online) gateways and known gates; rows locked for the caller."""
    if not gateways or not gates:
        return []
    q = (
        select(GalleryDelivery, Resident)
        .join(Resident, Resident.id == GalleryDelivery.resident)
        .where(
            GalleryDelivery.next_attempt_at.is_not(None),
            GalleryDelivery.next_attempt_at <= now,
            GalleryDelivery.gateway.in_(list(gateways)),
            GalleryDelivery.gate.in_(list(gates)),
        )
        .order_by(GalleryDelivery.next_attempt_at, GalleryDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=GalleryDelivery)
    )
    return [(d, r) for d, r in session.execute(q).all()]


def in_flight(session: Session, *, now: datetime) -> dict[str, int]:
    """Per gateway, how many commands were sent and still wait for their answer (not yet timed out)."""
    d = GalleryDelivery
    q = (
        select(d.gateway, func.count())
        .where(d.sent_at.is_not(None), d.error.is_(None), d.next_attempt_at > now)
        .group_by(d.gateway)
    )
    return {gw: int(n) for gw, n in session.execute(q).all()}


class Delivery(Protocol):
    """A command on its way to one gate, acknowledged once (a gallery change, a pass revocation)."""

    command_id: Any
    sent_at: datetime | None
    acked_at: datetime | None
    next_attempt_at: datetime | None
    error: str | None
    attempts: int


def mark_sent(delivery: Delivery, *, now: datetime, base_s: float, max_s: float) -> None:
    delivery.attempts += 1
    delivery.sent_at = now
    delivery.next_attempt_at = now + backoff(delivery.attempts, base_s=base_s, max_s=max_s)


def settle(delivery: Delivery, *, ok: bool, error: str, now: datetime, base_s: float, max_s: float) -> None:
    """Apply the gate's answer: acknowledged, or retried with backoff under a new command id.

    A gateway answers a copy of a command it has seen with the answer it gave it (it runs each command once):
    the retry after a refusal is a new command.
    """
    if ok:
        delivery.acked_at = now
        delivery.next_attempt_at = None
        delivery.error = None
    else:
        delivery.error = (error or "refused without a reason")[:500]
        delivery.next_attempt_at = now + backoff(max(1, delivery.attempts), base_s=base_s, max_s=max_s)
        delivery.command_id = new_id()


def mark_acked(
    session: Session,
    *,
    command_id: str,
    gateway: str,
    gate: str,
    ok: bool,
    error: str,
    now: datetime,
    base_s: float,
    max_s: float,
) -> GalleryDelivery | None:
    """Apply a gate's answer to the delivery it answers; None if it answers nothing pending here.

    A refusal (``ok`` false) gives the delivery a new command id for its retry (:func:`settle`).

    Only the gate the command went to, on its own gateway's topic, can answer it: an ack with a
    known command id from anyone else changes nothing.
    """
    q = (
        select(GalleryDelivery)
        .where(
            GalleryDelivery.command_id == command_id, GalleryDelivery.gateway == gateway, GalleryDelivery.gate == gate
        )
        .with_for_update()
    )
    d = session.execute(q).scalar_one_or_none()
    if d is None or d.acked_at is not None:
        return None
    settle(d, ok=ok, error=error, now=now, base_s=base_s, max_s=max_s)
    return d


def resend_gateway(session: Session, *, gateway: str, now: datetime) -> int:
    """Make every unacknowledged delivery to ``gateway`` due now (it just came online)."""
    q = (
        update(GalleryDelivery)
        .where(GalleryDelivery.gateway == gateway, GalleryDelivery.next_attempt_at > now)
        .values(next_attempt_at=now)
    )
    return int(session.execute(q).rowcount)  # type: ignore[attr-defined]


def delivery_state(d: GalleryDelivery) -> DeliveryState:
    if d.acked_at is not None:
        return DeliveryState.ACKED
    return DeliveryState.ERROR if d.error else DeliveryState.PENDING


def deliveries_of(session: Session, *, resident_id: str) -> list[GalleryDelivery]:
    q = select(GalleryDelivery).where(GalleryDelivery.resident == resident_id).order_by(GalleryDelivery.gate)
    return list(session.execute(q).scalars())
