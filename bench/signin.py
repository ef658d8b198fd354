#!/usr/bin/env python3
"""Sign-in cost: what one password guess costs (scrypt at the old N = 2^14 and at ours, 2^17), and how the control
room answers while a flood of wrong-password sign-ins arrives, side by side in one run.

    .venv/bin/python bench/signin.py [--flood 200] [--probes 40]

The flood: ``--flood`` concurrent wrong-password sign-ins from many addresses (the per-address limit lifted, as
for an attacker with many machines), while a signed-in operator calls ``GET /api/v1/auth/me`` ``--probes``
times. "before": the sign-in as it was, a plain route hashing at N = 2^14 on the request threads the operator's
requests need too (added to the app here as ``/bench/old-token``), and the same at N = 2^17 (what raising N
alone would have done); "ours": N = 2^17 in the API's own pool (half
the cores), at most 32 waiting (the rest 429).
The API is the real one (``cloud.api.app.create_api``) under uvicorn, on a SQLite database. Record results in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import uvicorn
from fastapi import APIRouter, Depends, HTTPException
from fastapi.security import OAuth2PasswordRequestForm

REPO = Path(__file__).resolve().parent.parent
from cloud.api.app import create_api  # noqa: E402
from cloud.api.deps import ApiContext  # noqa: E402
from cloud.api.ratelimit import SignInLimits  # noqa: E402
from cloud.db.engine import make_engine, make_sessions, migrate  # noqa: E402
from cloud.db.models import User  # noqa: E402
from cloud.users import create_user, issue_token, verify_password  # noqa: E402
from cloud.users import hash_password as make_hash  # noqa: E402
from cloud.workorders.routing import Router  # noqa: E402
from cloud.workorders.states import Role  # noqa: E402
from sc.config.loader import load_site_config  # noqa: E402

OLD_N, OURS_N = 2**14, 2**17


def guess_cost(n: int, repeat: int = 5) -> float:
    stored = make_hash("the right one", n=n)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        verify_password("a guess", stored)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def old_sign_in(ctx: ApiContext) -> APIRouter:
    """The sign-in as it was before: verified on a request thread, no limit on how many at once."""
    router = APIRouter()

    @router.post("/bench/old-token")
    def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, str]:
        with ctx.sessions.begin() as session:
            user = session.get(User, form.username)
            if user is None or not verify_password(form.password, user.password_hash):
                raise HTTPException(401, "wrong username or password")
            return {"access_token": issue_token(session, user=user, now=ctx.clock(), ttl=ctx.token_ttl)}

    return router


def run_api(ctx: ApiContext) -> tuple[uvicorn.Server, threading.Thread, str]:
    port = free_port()
    app = create_api(ctx)
    app.include_router(old_sign_in(ctx))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{base}/health", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    return server, thread, base


async def flood_and_probe(base: str, token: str, flood: int, probes: int, route: str) -> dict[str, Any]:
    statuses: list[int] = []
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=flood + 10)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as c:

        async def guess(i: int) -> None:
            r = await c.post(route, data={"username": "op", "password": f"guess-{i}"})
            statuses.append(r.status_code)

        async def probe() -> None:
            await asyncio.sleep(0.2)  # the flood is on
            for _ in range(probes):
                t0 = time.perf_counter()
                r = await c.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
                latencies.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
                await asyncio.sleep(0.05)

        t0 = time.perf_counter()
        await asyncio.gather(probe(), *(guess(i) for i in range(flood)))
        wall = time.perf_counter() - t0
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(0.95 * (len(latencies) - 1))] * 1000,
        "refused_429": statuses.count(429),
        "checked_401": statuses.count(401),
        "wall_s": wall,
    }


def scenario(name: str, *, n: int, route: str, flood: int, probes: int) -> dict[str, Any]:
    site = load_site_config(REPO / "configs" / "site.example.yaml").site
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'cloud.db'}")
        migrate(engine)
        sessions = make_sessions(engine)
        with sessions.begin() as s:
            create_user(s, user_id="op", name="op", role=Role.OPERATOR, password="right-password-1",
                        now=datetime.now(UTC), scrypt_n=n)  # fmt: skip
        ctx = ApiContext(
            site=site, router=Router(site), sessions=sessions, clock=lambda: datetime.now(UTC), scrypt_n=n,
            signin_limits=SignInLimits(failures=10**9, attempts=10**9),  # many addresses: no limit applies
        )  # fmt: skip
        server, thread, base = run_api(ctx)
        try:
            token = httpx.post(f"{base}/api/v1/auth/token", data={"username": "op", "password": "right-password-1"},
                               timeout=30).json()["access_token"]  # fmt: skip
            out = asyncio.run(flood_and_probe(base, token, flood, probes, route))
        finally:
            server.should_exit = True
            thread.join(30)
            ctx.hasher.shutdown(wait=False, cancel_futures=True)
            engine.dispose()
    print(
        f"{name:>24}: /auth/me p50 {out['p50_ms']:7.1f} ms, p95 {out['p95_ms']:7.1f} ms during the flood; "
        f"{out['checked_401']} guesses checked, {out['refused_429']} refused as busy, {out['wall_s']:.1f} s",
        flush=True,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flood", type=int, default=200)
    ap.add_argument("--probes", type=int, default=40)
    args = ap.parse_args(argv)
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    old, ours = guess_cost(OLD_N), guess_cost(OURS_N)
    print(f"one guess: N=2^14 {old * 1000:.0f} ms, N=2^17 {ours * 1000:.0f} ms: {ours / old:.1f}x the attacker's cost")
    scenario("before", n=OLD_N, route="/bench/old-token", flood=args.flood, probes=args.probes)
    # the cost ours asks for, on the request threads as before: what raising N alone would have done
    same = scenario("2^17 on request threads", n=OURS_N, route="/bench/old-token", flood=args.flood, probes=args.probes)
    mine = scenario("ours", n=OURS_N, route="/api/v1/auth/token", flood=args.flood, probes=args.probes)
    print(f"control room during the flood at N=2^17, p95: {same['p95_ms'] / mine['p95_ms']:.1f}x faster with ours")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
