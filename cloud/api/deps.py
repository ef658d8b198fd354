"""Dependencies: the request's database session, the signed-in user, role checks."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, HTTPException, Request, status
from fastapi import Path as PathParam
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.models import User
from cloud.garages.view import GarageView
from cloud.gates.enrolment import Enroller
from cloud.gates.sync import GateLink
from cloud.telemetry.history import TelemetryHistory
from cloud.users import SCRYPT_N, user_for_token
from cloud.workorders.routing import Router
from cloud.workorders.states import Role
from sc.config.schema import DepartmentKind, SiteConfig

from .ratelimit import SignInLimits
from .scope import Scopes

__all__ = [
    "ApiContext",
    "CtxDep",
    "CurrentUser",
    "GateStaff",
    "LiveStreams",
    "RowId",
    "ScopesDep",
    "SessionDep",
    "TokenDep",
    "TooManyStreams",
    "is_gate_staff",
    "require",
    "signed_in",
]


#: A row id in a path: a positive 32-bit integer (the columns' type), so a larger number is a 422, not a 500.
RowId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


class TooManyStreams(Exception):
    """A live stream refused: the user's, or this process's, streams are all in use."""


class LiveStreams:
    """How many live feeds are open, per user and in this process (thread-safe); bounded by both limits."""

    def __init__(self, *, per_user: int = 3, total: int = 100) -> None:
        self.per_user = per_user
        self.total = total
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}

    def open(self, user_id: str) -> None:
        with self._lock:
            mine = self._open.get(user_id, 0)
            if mine >= self.per_user:
                raise TooManyStreams(f"{user_id} has {mine} live feeds open already (at most {self.per_user})")
            if sum(self._open.values()) >= self.total:
                raise TooManyStreams(f"this server has {self.total} live feeds open, its limit: try again later")
            self._open[user_id] = mine + 1

    def close(self, user_id: str) -> None:
        with self._lock:
            left = self._open.get(user_id, 0) - 1
            if left > 0:
                self._open[user_id] = left
            else:
                self._open.pop(user_id, None)

    def count(self, user_id: str | None = None) -> int:
        with self._lock:
            return self._open.get(user_id, 0) if user_id is not None else sum(self._open.values())


def hasher_threads() -> int:
    """Half the cores, 1 to 4: a flood of sign-ins leaves the other half to everyone else."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


@dataclass(frozen=True)
class ApiContext:
    site: SiteConfig
    router: Router
    sessions: sessionmaker[Session]
    clock: Callable[[], datetime]
    token_ttl: timedelta = timedelta(hours=12)
    feed_poll_s: float = 0.2
    feed_replay_max: int = 1000  # history rows a reconnecting live feed is replayed at most
    streams: LiveStreams = field(default_factory=LiveStreams)
    stopping: threading.Event = field(default_factory=threading.Event)  # set when the process stops: feeds end
    signin_limits: SignInLimits = field(default_factory=SignInLimits)
    scrypt_n: int = SCRYPT_N  # the password hashes' cost (CloudSettings.password_scrypt_n)
    # passwords are checked here, not on the request threads (scrypt is slow on purpose); at most 32 wait
    hasher: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(hasher_threads(), thread_name_prefix="password")
    )
    hashing: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(32))
    media_dir: Path = Path("run/media")
    media_max_bytes: int = 5 * 1024 * 1024
    pass_key: Ed25519PrivateKey | None = None
    gates: GateLink | None = None  # gallery sync and commands to the gates (None: this process has none)
    door_open_timeout_s: float = 5.0
    enroller: Enroller = field(default_factory=Enroller)
    # readings history for the per-device charts (None: no InfluxDB 1.x configured for this process)
    telemetry: TelemetryHistory | None = None
    # the garages' live state for the map, fed by the gate link (None: no garages or no link in this process)
    garages: GarageView | None = None


def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


CtxDep = Annotated[ApiContext, Depends(_ctx)]


def _scopes(request: Request) -> Scopes:
    scopes: Scopes = request.app.state.scopes
    return scopes


ScopesDep = Annotated[Scopes, Depends(_scopes)]


def _session(ctx: CtxDep) -> Iterator[Session]:
    with ctx.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(_session)]

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


TokenDep = Annotated[str | None, Depends(_bearer)]


def _user_or_401(session: Session, ctx: ApiContext, token: str | None) -> User:
    if not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "sign in first: POST /api/v1/auth/token", {"WWW-Authenticate": "Bearer"}
        )
    user = user_for_token(session, token=token, now=ctx.clock())
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "the token is unknown or expired", {"WWW-Authenticate": "Bearer"}
        )
    return user


def _current_user(ctx: CtxDep, session: SessionDep, token: TokenDep) -> User:
    return _user_or_401(session, ctx, token)


def signed_in(ctx: ApiContext, token: str | None) -> User:
    """The token's user from a session of its own, closed before this returns (for a response that outlives the
    request's dependencies, such as a stream): the user comes back detached, its columns loaded."""
    with ctx.sessions() as session:
        user = _user_or_401(session, ctx, token)
        session.expunge(user)
        return user


CurrentUser = Annotated[User, Depends(_current_user)]


def require(*roles: Role) -> Callable[[User], User]:
    """A dependency that lets only ``roles`` through (403 otherwise)."""
    allowed = {r.value for r in roles}

    def check(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"a {user.role} may not do this (allowed: {', '.join(sorted(allowed))})",
            )
        return user

    return check


def is_gate_staff(site: SiteConfig, user: User) -> bool:
    """The control room, and the property company's people: who may see entries and manage residents."""
    if user.role in (Role.OPERATOR.value, Role.ADMIN.value):
        return True
    if user.role != Role.DEPARTMENT.value:
        return False
    return any(d.id == user.department and d.kind is DepartmentKind.PROPERTY for d in site.departments)


def _gate_staff(ctx: CtxDep, user: CurrentUser) -> User:
    if not is_gate_staff(ctx.site, user):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"a {user.role} may not do this (allowed: admin, operator, a property company's department)",
        )
    return user


GateStaff = Annotated[User, Depends(_gate_staff)]
