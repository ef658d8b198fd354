"""Visitor passes in the cloud: keyword-only functions over a SQLAlchemy session (the caller owns the transaction).

Every pass the cloud signs is recorded (:func:`record_pass`): who invited whom,
to which gates, when, and for how many entries, with one :class:`PassGate` row
per gate. Revoking a pass (:func:`revoke_pass`, :func:`revoke_passes_of` when a
resident's account is closed) plans a ``pass_revoke`` to every gate it was valid
at, sent and acknowledged like a gallery change (:mod:`cloud.gates.sync`):
:func:`due_revocations`, :func:`mark_revocation_acked`, :func:`resend_revocations`.
A revocation not delivered before its pass ended is no longer sent: the gate
refuses that pass by its end anyway.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cloud.db.models import PassGate, VisitorPass
from sc.config.schema import Gate
from sc.contracts.messages import new_id
from sc.passes import PassClaims

from .store import settle

__all__ = [
    "RevocationState",
    "due_revocations",
    "get_pass",
    "list_passes",
    "mark_revocation_acked",
    "pass_claims",
    "pass_gates",
    "passes_since",
    "record_pass",
    "resend_revocations",
    "revocation_expires",
    "revocation_state",
    "revocations_in_flight",
    "revoke_pass",
    "revoke_passes_of",
]

#: A gate accepts a pass up to this long after its end (sc.passes.verify_token's leeway, with a margin): a
#: revocation is worth sending until then.
PASS_LEEWAY = timedelta(seconds=120)


class RevocationState(StrEnum):
    NONE = "none"  # the pass is not revoked
    PENDING = "pending"  # on its way to the gate (not sent, sent, or the gateway offline)
    ACKED = "acked"  # the gate keeps the revocation
    ERROR = "error"  # the gate could not apply it; retried with backoff
    MOOT = "moot"  # the pass ended before the gate was reached: it refuses the pass anyway


def record_pass(session: Session, *, claims: PassClaims, gates: Sequence[Gate], now: datetime) -> VisitorPass:
    """Keep a pass just signed; ``gates`` are the site config's gates its claims name."""
    p = VisitorPass(
        id=claims.pid, site=claims.site, resident=claims.res, visitor_name=claims.vis, gates=list(claims.gates),
        valid_from=claims.valid_from(), valid_until=claims.valid_until(), uses=claims.uses, created_at=now,
    )  # fmt: skip
    session.add(p)
    session.flush()  # the pass before its gates (no relationship tells the unit of work the order)
    by_id = {g.id: g for g in gates}
    for gid in claims.gates:
        session.add(PassGate(pass_id=p.id, gate=gid, gateway=by_id[gid].gateway, attempts=0))
    session.flush()
    return p


def pass_claims(p: VisitorPass) -> PassClaims:
    """The claims the pass was signed with (signing them again gives the same token)."""
    return PassClaims(
        pid=p.id, site=p.site, res=p.resident, vis=p.visitor_name, gates=list(p.gates),
        nbf=int(p.valid_from.timestamp()), exp=int(p.valid_until.timestamp()), uses=p.uses,
    )  # fmt: skip


def passes_since(session: Session, *, resident: str, since: datetime) -> int:
    """How many passes ``resident`` created since ``since``."""
    q = select(func.count()).where(VisitorPass.resident == resident, VisitorPass.created_at >= since)
    return int(session.execute(q).scalar_one())


def get_pass(session: Session, *, pass_id: str) -> VisitorPass | None:
    return session.get(VisitorPass, pass_id)


def list_passes(
    session: Session,
    *,
    resident: str | None = None,
    gates: Collection[str] | None = None,
    valid_at: datetime | None = None,
    limit: int = 100,
) -> list[VisitorPass]:
    """Newest first: ``resident``'s (none: anyone's), valid at any of ``gates`` (none: any gate), still valid and
    not revoked at ``valid_at`` (none: all)."""
    q = select(VisitorPass).order_by(VisitorPass.created_at.desc(), VisitorPass.id).limit(limit)
    if resident is not None:
        q = q.where(VisitorPass.resident == resident)
    if gates is not None:
        q = q.where(VisitorPass.id.in_(select(PassGate.pass_id).where(PassGate.gate.in_(sorted(gates)))))
    if valid_at is not None:
        q = q.where(VisitorPass.valid_until > valid_at, VisitorPass.revoked_at.is_(None))
    return list(session.execute(q).scalars())


def pass_gates(session: Session, *, pass_ids: Collection[str]) -> dict[str, list[PassGate]]:
    """Each pass's gates (with their revocation), by pass id."""
    out: dict[str, list[PassGate]] = {pid: [] for pid in pass_ids}
    if not pass_ids:
        return out
    q = select(PassGate).where(PassGate.pass_id.in_(sorted(pass_ids))).order_by(PassGate.pass_id, PassGate.id)
    for g in session.execute(q).scalars():
        out[g.pass_id].append(g)
    return out


def revoke_pass(session: Session, *, visitor_pass: VisitorPass, by: str, now: datetime) -> int:
    """Revoke the pass and plan its ``pass_revoke`` to each of its gates; returns how many were planned.

    Revoking a pass already revoked changes nothing (0); one that has ended is recorded as revoked, and nothing
    is sent (the gates refuse it anyway).
    """
    if visitor_pass.revoked_at is not None:
        return 0
    visitor_pass.revoked_at, visitor_pass.revoked_by = now, by
    if visitor_pass.valid_until + PASS_LEEWAY <= now:
        session.flush()
        return 0
    planned = 0
    for g in session.execute(select(PassGate).where(PassGate.pass_id == visitor_pass.id).with_for_update()).scalars():
        g.command_id, g.planned_at, g.next_attempt_at = new_id(), now, now
        g.sent_at = g.acked_at = None
        g.error = None
        g.attempts = 0
        planned += 1
    session.flush()
    return planned


def revoke_passes_of(session: Session, *, resident: str, by: str, now: datetime) -> int:
    """Revoke every pass of ``resident`` that still lets someone in (their account is closed); returns how many."""
    live = list_passes(session, resident=resident, valid_at=now - PASS_LEEWAY, limit=100_000)
    for p in live:
        revoke_pass(session, visitor_pass=p, by=by, now=now)
    return len(live)


def revocation_expires(p: VisitorPass) -> int:
    """Until when (Unix seconds) a gate must keep the pass's revocation: past the last moment it would accept it."""
    return int((p.valid_until + PASS_LEEWAY).timestamp())


def due_revocations(
    session: Session, *, now: datetime, gateways: Sequence[str], gates: Sequence[str], limit: int = 200
) -> list[tuple[PassGate, VisitorPass]]:
    """Revocations to send now, to the given (online) gateways and known gates; rows locked for the caller."""
    if not gateways or not gates or limit <= 0:
        return []
    q = (
        select(PassGate, VisitorPass)
        .join(VisitorPass, VisitorPass.id == PassGate.pass_id)
        .where(
            PassGate.next_attempt_at.is_not(None),
            PassGate.next_attempt_at <= now,
            PassGate.gateway.in_(list(gateways)),
            PassGate.gate.in_(list(gates)),
            VisitorPass.valid_until > now - PASS_LEEWAY,
        )
        .order_by(PassGate.next_attempt_at, PassGate.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=PassGate)
    )
    return [(g, p) for g, p in session.execute(q).all()]


def revocations_in_flight(session: Session, *, now: datetime) -> dict[str, int]:
    """Per gateway, how many revocations were sent and still wait for their answer (not yet timed out)."""
    q = (
        select(PassGate.gateway, func.count())
        .where(PassGate.sent_at.is_not(None), PassGate.error.is_(None), PassGate.next_attempt_at > now)
        .group_by(PassGate.gateway)
    )
    return {gw: int(n) for gw, n in session.execute(q).all()}


def mark_revocation_acked(
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
) -> PassGate | None:
    """Apply a gate's answer to the revocation it answers; None if it answers nothing pending here.

    Only the gate the command went to, on its own gateway's topic, can answer it.
    """
    q = (
        select(PassGate)
        .where(PassGate.command_id == command_id, PassGate.gateway == gateway, PassGate.gate == gate)
        .with_for_update()
    )
    g = session.execute(q).scalar_one_or_none()
    if g is None or g.acked_at is not None:
        return None
    settle(g, ok=ok, error=error, now=now, base_s=base_s, max_s=max_s)
    return g


def resend_revocations(session: Session, *, gateway: str, now: datetime) -> int:
    """Make every unacknowledged revocation to ``gateway`` due now (it just came online)."""
    q = update(PassGate).where(PassGate.gateway == gateway, PassGate.next_attempt_at > now).values(next_attempt_at=now)
    return int(session.execute(q).rowcount)  # type: ignore[attr-defined]


def revocation_state(p: VisitorPass, g: PassGate, *, now: datetime) -> RevocationState:
    if p.revoked_at is None:
        return RevocationState.NONE
    if g.command_id is None:  # revoked after it had ended: nothing to send
        return RevocationState.MOOT
    if g.acked_at is not None:
        return RevocationState.ACKED
    if p.valid_until + PASS_LEEWAY <= now:
        return RevocationState.MOOT
    return RevocationState.ERROR if g.error else RevocationState.PENDING
