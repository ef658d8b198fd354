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

from cloud.db.models import ApiToken, User
from cloud.workorders.states import Role

__all__ = ["create_user", "hash_password", "issue_token", "user_for_token", "verify_password", "verify_user"]

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(got.hex(), digest)


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
) -> User:
    if role is Role.SYSTEM:
        raise ValueError("the system role is not for people")
    if len(password) < 8:
        raise ValueError("a password needs at least 8 characters")
    user = User(
        id=user_id, name=name, role=role.value, department=department, location=location,
        password_hash=hash_password(password), active=True, created_at=now,
    )  # fmt: skip
    session.add(user)
    session.flush()
    return user


def verify_user(session: Session, *, user_id: str, password: str) -> User | None:
    user = session.get(User, user_id)
    if user is None or not user.active:
        hash_password(password)  # same work either way: no timing hint that the user exists
        return None
    return user if verify_password(password, user.password_hash) else None


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
