"""The live feed for the control room: Server-Sent Events of every order change.

Every change to an order (opened by an alarm or a report, dispatched,
accepted, escalated, cleared by its device, closed...) is a row in the
order history, whichever process made it. The feed follows that table, so
it works with any number of ingesters and API processes, and a client that
reconnects with ``Last-Event-ID`` misses nothing (up to ``feed_replay_max``
changes back). Each client sees only the orders its role may see, and only
while its token is valid; each user may hold a few streams, each process a
bounded number, and no stream holds a database connection while it waits.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, status
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select

from cloud.db.models import User, WorkOrder, WorkOrderHistory
from cloud.users import user_for_token
from cloud.workorders.queries import visible

from ..deps import ApiContext, CtxDep, TokenDep, TooManyStreams, signed_in
from ..schemas import WorkOrderPublic

router = APIRouter(prefix="/api/v1", tags=["live feed"])
KEEPALIVE_S = 15.0


def _fetch(ctx: ApiContext, token: str, user: User, after: int) -> list[tuple[int, str]] | None:
    """The next changes after ``after`` that ``user`` may see; None once the token is expired or revoked or the
    user deactivated (checked on every poll, in the same short session)."""
    with ctx.sessions() as s:
        if user_for_token(s, token=token, now=ctx.clock()) is None:
            return None
        rows = s.execute(
            select(WorkOrderHistory, WorkOrder)
            .join(WorkOrder, WorkOrder.id == WorkOrderHistory.order_id)
            .where(WorkOrderHistory.id > after, visible(ctx.site, user))
            .order_by(WorkOrderHistory.id)
            .limit(500)
        ).all()
        out = []
        for h, o in rows:
            data = {
                "history_id": h.id,
                "action": h.action,
                "at": h.at.isoformat(),
                "actor": h.actor,
                "from_status": h.from_status,
                "to_status": h.to_status,
                "note": h.note,
                "order": WorkOrderPublic.model_validate(o).model_dump(mode="json"),
            }
            out.append((h.id, json.dumps(data, ensure_ascii=False)))
        return out


def _last_id(ctx: ApiContext) -> int:
    with ctx.sessions() as s:
        return int(s.execute(select(func.coalesce(func.max(WorkOrderHistory.id), 0))).scalar_one())


@router.get(
    "/live",
    summary="Server-Sent Events: `event: order` for every change to an order you may see",
    response_class=StreamingResponse,
    responses={
        401: {"description": "not signed in, or the token expired"},
        429: {"description": "this user's (or this server's) live feeds are all open"},
    },
)
async def live(
    request: Request,
    ctx: CtxDep,
    token: TokenDep,
    last_event_id: Annotated[int | None, Header(alias="Last-Event-ID", ge=0)] = None,
) -> StreamingResponse:
    """The stream holds no database connection between its polls: the user is signed in with a session of its
    own, and every poll re-checks the token (a signed-out, expired or deactivated user's feed ends with
    ``event: signed_out``). A reconnecting client is replayed at most ``feed_replay_max`` changes; beyond that,
    ``event: gap`` says from where, and the client reloads the board."""
    user = await asyncio.to_thread(signed_in, ctx, token)
    assert token is not None  # signed_in refused a missing one
    try:
        ctx.streams.open(user.id)
    except TooManyStreams as exc:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(exc), {"Retry-After": "30"}) from exc
    try:
        last = await asyncio.to_thread(_last_id, ctx)
    except BaseException:
        ctx.streams.close(user.id)
        raise
    cursor = last if last_event_id is None else max(last_event_id, last - ctx.feed_replay_max)
    gap = last_event_id is not None and cursor > last_event_id

    async def stream() -> AsyncIterator[str]:
        nonlocal cursor
        try:
            yield f": live feed for {user.id} ({user.role}) from history id {cursor}\n\n"
            if gap:
                yield f"event: gap\ndata: {json.dumps({'asked_from': last_event_id, 'from': cursor})}\n\n"
            quiet = 0.0
            while not ctx.stopping.is_set() and not await request.is_disconnected():
                rows = await asyncio.to_thread(_fetch, ctx, token, user, cursor)
                if rows is None:
                    yield 'event: signed_out\ndata: {"reason": "the token is no longer valid: sign in again"}\n\n'
                    return
                for hid, data in rows:
                    cursor = hid
                    yield f"id: {hid}\nevent: order\ndata: {data}\n\n"
                if rows:
                    quiet = 0.0
                    continue
                await asyncio.sleep(ctx.feed_poll_s)
                quiet += ctx.feed_poll_s
                if quiet >= KEEPALIVE_S:
                    quiet = 0.0
                    yield ": keepalive\n\n"
        finally:
            ctx.streams.close(user.id)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
