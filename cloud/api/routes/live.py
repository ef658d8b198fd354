"""The live feed for the control room: Server-Sent Events of every order change.

Every change to an order (opened by an alarm or a report, dispatched,
accepted, escalated, cleared by its device, closed...) is a row in the
order history, whichever process made it. The feed follows that table, so
it works with any number of ingesters and API processes, and a client that
reconnects with ``Last-Event-ID`` misses nothing. Each client sees only the
orders its role may see.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select

from cloud.db.models import User, WorkOrder, WorkOrderHistory
from cloud.workorders.queries import visible

from ..deps import ApiContext, CtxDep, CurrentUser
from ..schemas import WorkOrderPublic

router = APIRouter(prefix="/api/v1", tags=["live feed"])
KEEPALIVE_S = 15.0


def _fetch(ctx: ApiContext, user: User, after: int) -> list[tuple[int, str]]:
    with ctx.sessions() as s:
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
)
async def live(
    request: Request,
    ctx: CtxDep,
    user: CurrentUser,
    last_event_id: Annotated[int | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    cursor = last_event_id if last_event_id is not None else await asyncio.to_thread(_last_id, ctx)

    async def stream() -> AsyncIterator[str]:
        nonlocal cursor
        yield f": live feed for {user.id} ({user.role}) from history id {cursor}\n\n"
        quiet = 0.0
        while not await request.is_disconnected():
            rows = await asyncio.to_thread(_fetch, ctx, user, cursor)
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

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
