"""Sign in: username and password for a bearer token; sign out (this token, or everywhere).

Passwords are checked off the request threads, in the API's own small pool (``ApiContext.hasher``): a flood of
sign-ins waits there, and every other request goes on. Attempts are limited per account and per address
(cloud/api/ratelimit.py): 429 with ``Retry-After`` and the reason.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from cloud.users import issue_token, revoke_token, revoke_tokens, verify_user

from ..deps import ApiContext, CtxDep, CurrentUser, SessionDep, TokenDep
from ..ratelimit import Limited
from ..schemas import SignedOut, Token, UserPublic

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def _check(ctx: ApiContext, username: str, password: str) -> str | None:
    """A new token for a right password (None: wrong); in the hasher pool, with a session of its own."""
    with ctx.sessions.begin() as session:
        user = verify_user(session, user_id=username, password=password, scrypt_n=ctx.scrypt_n)
        if user is None:
            return None
        return issue_token(session, user=user, now=ctx.clock(), ttl=ctx.token_ttl)


@router.post(
    "/token",
    response_model=Token,
    summary="Sign in (OAuth2 password flow)",
    responses={401: {"description": "wrong username or password"}, 429: {"description": "too many attempts"}},
)
async def sign_in(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], ctx: CtxDep) -> Token:
    address = request.client.host if request.client else "unknown"
    try:
        ctx.signin_limits.attempt(form.username, address)
    except Limited as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, str(exc), {"Retry-After": str(exc.retry_after_s)}
        ) from exc
    if not ctx.hashing.acquire(blocking=False):
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, "the server is busy signing people in: try again", {"Retry-After": "5"}
        )
    try:
        token = await asyncio.wrap_future(ctx.hasher.submit(_check, ctx, form.username, form.password))
    finally:
        ctx.hashing.release()
    if token is None:
        ctx.signin_limits.failed(form.username)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    ctx.signin_limits.succeeded(form.username)
    return Token(access_token=token, expires_in=int(ctx.token_ttl.total_seconds()))


@router.get("/me", response_model=UserPublic, summary="Who am I")
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)


@router.post("/signout", response_model=SignedOut, summary="Sign this token out")
def sign_out(user: CurrentUser, token: TokenDep, session: SessionDep) -> SignedOut:
    assert token is not None  # CurrentUser needed one
    n = int(revoke_token(session, token=token))
    session.commit()
    return SignedOut(user=user.id, tokens=n)


@router.post("/signout-all", response_model=SignedOut, summary="Sign out everywhere (every token of yours)")
def sign_out_everywhere(user: CurrentUser, session: SessionDep) -> SignedOut:
    n = revoke_tokens(session, user_id=user.id)
    session.commit()
    return SignedOut(user=user.id, tokens=n)
