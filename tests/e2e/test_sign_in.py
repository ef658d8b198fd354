"""Issue 13, finding 5, on the real PostgreSQL: sign-in is limited per account and per address (429 with the
reason and Retry-After), tokens can be revoked (this one, or everywhere), deactivating a user revokes theirs, and
a password hash made with older parameters is made anew at the next sign-in."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cloud.app import CloudApp
from cloud.db.engine import make_sessions
from cloud.db.models import ApiToken, User
from cloud.users import deactivate_user
from cloud.workorders.states import Role
from harness import API_PASSWORD, TEST_SCRYPT_N, Site, add_api_users, api_settings

USERS: dict[str, tuple[Any, str | None, str | None]] = {
    "op-1": (Role.OPERATOR, None, None),
    "op-2": (Role.OPERATOR, None, None),
}


@pytest.fixture
def base(site: Site, db: Engine, tmp_path: Path) -> Iterator[str]:
    add_api_users(db, USERS)
    app = CloudApp(site.loaded, api_settings(db, tmp_path, signin_failures=3, signin_attempts=12))
    app.start()
    try:
        yield f"http://127.0.0.1:{app.api_port}"
    finally:
        app.stop()


def sign_in(base: str, user: str, password: str = API_PASSWORD) -> httpx.Response:
    with httpx.Client(base_url=base, timeout=30) as c:
        return c.post("/api/v1/auth/token", data={"username": user, "password": password})


def me(base: str, token: str) -> int:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        return c.get("/api/v1/auth/me").status_code


def test_wrong_passwords_lock_the_account_for_a_while_and_not_another(base: str) -> None:
    assert [sign_in(base, "op-1", "wrong").status_code for _ in range(3)] == [401, 401, 401]
    locked = sign_in(base, "op-1")  # the right password, too soon
    assert locked.status_code == 429
    assert locked.json()["detail"].startswith("too many wrong passwords for 'op-1': try again in ")
    assert 0 < int(locked.headers["retry-after"]) <= 300
    assert sign_in(base, "op-2").status_code == 200  # another account is not affected


def test_an_address_trying_many_accounts_is_slowed_down(base: str) -> None:
    codes = [sign_in(base, f"nobody-{i}", "guess").status_code for i in range(12)]
    assert codes == [401] * 12
    r = sign_in(base, "op-2")
    assert r.status_code == 429 and r.json()["detail"].startswith("too many sign-ins from 127.0.0.1: try again in ")


def test_sign_out_revokes_this_token_and_sign_out_everywhere_all(base: str, db: Engine) -> None:
    a, b, c = (sign_in(base, "op-1").json()["access_token"] for _ in range(3))
    assert [me(base, t) for t in (a, b, c)] == [200, 200, 200]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {a}"}) as client:
        assert client.post("/api/v1/auth/signout").json() == {"user": "op-1", "tokens": 1}
    assert [me(base, t) for t in (a, b, c)] == [401, 200, 200]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {b}"}) as client:
        assert client.post("/api/v1/auth/signout-all").json() == {"user": "op-1", "tokens": 2}
    assert [me(base, t) for t in (a, b, c)] == [401, 401, 401]


def test_deactivating_a_user_revokes_their_tokens(base: str, db: Engine) -> None:
    token = sign_in(base, "op-2").json()["access_token"]
    with make_sessions(db).begin() as s:
        assert deactivate_user(s, user_id="op-2", now=datetime.now(UTC)) == 0  # made no visitor passes
        assert deactivate_user(s, user_id="nobody", now=datetime.now(UTC)) is None
    with Session(db) as s:
        left = s.execute(select(func.count()).select_from(ApiToken).where(ApiToken.user_id == "op-2")).scalar_one()
    assert left == 0 and me(base, token) == 401
    assert sign_in(base, "op-2").status_code == 401


def test_an_old_hash_is_made_anew_at_the_next_sign_in(site: Site, db: Engine, tmp_path: Path) -> None:
    add_api_users(db, USERS)  # hashed with N = TEST_SCRYPT_N
    app = CloudApp(site.loaded, api_settings(db, tmp_path, password_scrypt_n=TEST_SCRYPT_N * 4))
    app.start()
    try:
        assert sign_in(f"http://127.0.0.1:{app.api_port}", "op-1").status_code == 200
    finally:
        app.stop()
    with Session(db) as s:
        hashes = {u.id: u.password_hash.split("$")[1] for u in s.execute(select(User)).scalars()}
    assert hashes == {"op-1": str(TEST_SCRYPT_N * 4), "op-2": str(TEST_SCRYPT_N)}
