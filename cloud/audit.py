"""The audit log: who looked at people's data and who opened doors (keyword-only data-layer functions).

Appended in the same transaction as what it records (an enrolment, a removal,
a revocation), or on its own for a read (a snapshot view, the entries list) and
for a remote open, whatever its outcome. Readable by admins only
(``GET /api/v1/audit``); kept ``privacy.audit_days`` (the retention job).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cloud.db.models import AuditRecord

__all__ = ["AuditAction", "list_audit", "prune_audit", "record"]

RETENTION_ACTOR = "retention"


class AuditAction(StrEnum):
    SNAPSHOT_VIEWED = "snapshot_viewed"  # a gate event's JPEG (a face crop, a stranger's frame)
    ENTRIES_VIEWED = "entries_viewed"  # the list of who came in
    DOOR_OPENED = "door_opened"  # a remote open, with the gate's answer (or none) as the outcome
    RESIDENT_ENROLLED = "resident_enrolled"
    RESIDENT_REMOVED = "resident_removed"
    PASS_REVOKED = "pass_revoked"
    USER_DEACTIVATED = "user_deactivated"
    RETENTION = "retention"  # the daily job: what it removed


def record(
    session: Session, *, actor: str, role: str, action: AuditAction, target: str, at: datetime, outcome: str = ""
) -> None:
    """Append one record (the caller commits)."""
    session.add(AuditRecord(at=at, actor=actor[:64], role=role[:16], action=action.value, target=target[:200],
                            outcome=outcome[:2000]))  # fmt: skip


def list_audit(
    session: Session,
    *,
    actions: Sequence[AuditAction] = (),
    actor: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 200,
) -> list[AuditRecord]:
    """Newest first."""
    q = select(AuditRecord).order_by(AuditRecord.at.desc(), AuditRecord.id.desc()).limit(limit)
    if actions:
        q = q.where(AuditRecord.action.in_([a.value for a in actions]))
    if actor is not None:
        q = q.where(AuditRecord.actor == actor)
    if target is not None:
        q = q.where(AuditRecord.target == target)
    if since is not None:
        q = q.where(AuditRecord.at >= since)
    if until is not None:
        q = q.where(AuditRecord.at < until)
    return list(session.execute(q).scalars())


def prune_audit(session: Session, *, before: datetime) -> int:
    """Remove records older than ``before``; returns how many."""
    return int(session.execute(delete(AuditRecord).where(AuditRecord.at < before)).rowcount)  # type: ignore[attr-defined]
