"""Sign in: username and password for a bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm

from cloud.users import issue_token, verify_user

from ..deps import CtxDep, CurrentUser, SessionDep
from ..schemas import Token, UserPublic

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/token", response_model=Token, summary="Sign in (OAuth2 password flow)")
def sign_in(form: Annotated[OAuth2PasswordRequestForm, Depends()], ctx: CtxDep, session: SessionDep) -> Token:
    user = verify_user(session, user_id=form.username, password=form.password)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    token = issue_token(session, user=user, now=ctx.clock(), ttl=ctx.token_ttl)
    session.commit()
    return Token(access_token=token, expires_in=int(ctx.token_ttl.total_seconds()))


@router.get("/me", response_model=UserPublic, summary="Who am I")
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)
