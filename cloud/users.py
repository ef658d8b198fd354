"""Users, passwords and bearer tokens (keyword-only data-layer functions).

Passwords are stored as scrypt hashes; tokens are random and only their
SHA-256 is stored, so a copy of the database gives away neither.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cloud import audit
from cloud.audit import AuditAction
from cloud.db.models import ApiToken, User
from cloud.gates.passes import revoke_passes_of
from cloud.workorders.states import Role

__all__ = [
    "SCRYPT_N",
    "create_user",
    "deactivate_user",
    "hash_password",
    "issue_token",
    "needs_rehash",
    "revoke_token",
    "revoke_tokens",
    "user_for_token",
    "verify_password",
    "verify_user",
]

#: scrypt's cost: N = 2**17, r = 8, p = 1 (OWASP's recommendation; 128 MiB and about 0.3 s per hash on the
#: test machine). A hash made with a smaller N still verifies, and is made anew at the next sign-in.
SCRYPT_N, _R, _P = 2**17, 8, 1
#: the largest N a stored hash may ask for (a bigger one is refused, not computed)
_MAX_N = 2**20


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * r * n + 1024 * 1024)


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    salt = secrets.token_bytes(16)
    return f"scrypt${n}${_R}${_P}${salt.hex()}${_scrypt(password, salt, n, _R, _P).hex()}"


def _params(stored: str) -> tuple[int, int, int, bytes, str] | None:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt" or not (1 < int(n) <= _MAX_N) or not (0 < int(r) <= 32) or not (0 < int(p) <= 16):
            return None
        return int(n), int(r), int(p), bytes.fromhex(salt), digest
    except ValueError:
        return None


def verify_password(password: str, stored: str) -> bool:
    params = _params(stored)
    if params is None:
        return False
    n, r, p, salt, digest = params
    return hmac.compare_digest(_scrypt(password, salt, n, r, p).hex(), digest)


def needs_rehash(stored: str, *, scrypt_n: int = SCRYPT_N) -> bool:
    """A hash made with weaker parameters than ``scrypt_n``'s."""
    params = _params(stored)
    return params is None or params[0] < scrypt_n


def create_user(
    session: Session,
    *,
    user_id: str,
    name: str,
    role: Role,
    password: str,
    now: datetime,
    department: str | None = None,
    location: str | None = None,
    scrypt_n: int = SCRYPT_N,
) -> User:
    if role is Role.SYSTEM:
        raise ValueError("the system role is not for people")
    if len(password) < 8:
        raise ValueError("a password needs at least 8 characters")
    user = User(
        id=user_id, name=name, role=role.value, department=department, location=location,
        password_hash=hash_password(password, n=scrypt_n), active=True, created_at=now,
    )  # fmt: skip
    session.add(user)
    session.flush()
    return user


def verify_user(session: Session, *, user_id: str, password: str, scrypt_n: int = SCRYPT_N) -> User | None:
    """The user if the password is theirs and they are active; a hash made with a smaller N than ``scrypt_n``
    is made anew."""
    user = session.get(User, user_id)
    if user is None or not user.active:
        hash_password(password, n=scrypt_n)  # same work either way: no timing hint that the user exists
        return None
    if not verify_password(password, user.password_hash):
        return None
    if needs_rehash(user.password_hash, scrypt_n=scrypt_n):  # older parameters: made anew now that we have it
        user.password_hash = hash_password(password, n=scrypt_n)
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, *, user: User, now: datetime, ttl: timedelta) -> str:
    token = secrets.token_urlsafe(32)
    session.add(ApiToken(token_hash=_digest(token), user_id=user.id, created_at=now, expires_at=now + ttl))
    session.execute(delete(ApiToken).where(ApiToken.expires_at < now))
    return token


def user_for_token(session: Session, *, token: str, now: datetime) -> User | None:
    row = session.execute(
        select(User, ApiToken.expires_at)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == _digest(token))
    ).first()
    if row is None:
        return None
    user, expires = row
    return user if expires > now and user.active else None


def revoke_token(session: Session, *, token: str) -> bool:
    """Sign this token out; False if it was not known."""
    return bool(session.execute(delete(ApiToken).where(ApiToken.token_hash == _digest(token))).rowcount)  # type: ignore[attr-defined]


def revoke_tokens(session: Session, *, user_id: str) -> int:
    """Sign ``user_id`` out everywhere; how many tokens that was."""
    return int(session.execute(delete(ApiToken).where(ApiToken.user_id == user_id)).rowcount)  # type: ignore[attr-defined]


def deactivate_user(
    session: Session, *, user_id: str, now: datetime, by: str = "sc cloud deactivate", role: str = "admin"
) -> int | None:
    """The user may no longer sign in, every token of theirs is revoked, and so is every visitor pass they
    created that still lets someone in (a resident who moved out: the gates are told, cloud/gates/passes.py).

    Returns how many passes were revoked; None: no such user.
    """
    user = session.get(User, user_id)
    if user is None:
        return None
    user.active = False
    revoke_tokens(session, user_id=user_id)
    passes = revoke_passes_of(session, resident=user_id, by=by, now=now)
    audit.record(
        session, actor=by, role=role, action=AuditAction.USER_DEACTIVATED,
        target=user_id, at=now, outcome=f"tokens revoked, {passes} visitor passes revoked",
    )  # fmt: skip
    return passes
