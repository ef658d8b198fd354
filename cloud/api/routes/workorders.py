"""Work orders: list, read with history, act on them (dispatch, accept, ...)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import select

from cloud.db.models import EventRow, User, WorkOrderHistory
from cloud.db.models import WorkOrder as WorkOrderRow
from cloud.workorders.queries import can_see, list_query
from cloud.workorders.states import Action, BadRequest, NotAllowed, Role, Status, WrongStatus, allowed_actions
from cloud.workorders.store import transition

from ..deps import CtxDep, CurrentUser, RowId, SessionDep
from ..schemas import ActionRequest, EventPublic, HistoryPublic, WorkOrderDetail, WorkOrderPublic

router = APIRouter(prefix="/api/v1/work-orders", tags=["work orders"])


@router.get("", response_model=list[WorkOrderPublic], summary="Orders this user may see, newest first")
def list_orders(
    ctx: CtxDep,
    session: SessionDep,
    user: CurrentUser,
    status_: Annotated[list[Status] | None, Query(alias="status")] = None,
    department: str | None = None,
    grid: str | None = None,
    assignee: str | None = None,
    category: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[WorkOrderPublic]:
    q = list_query(
        ctx.site, user, statuses=[s.value for s in status_ or ()], department=department, grid=grid,
        assignee=assignee, category=category, limit=limit, offset=offset,
    )  # fmt: skip
    return [WorkOrderPublic.model_validate(o) for o in session.execute(q).scalars()]


def _actions(user: User, order: WorkOrderRow) -> list[Action]:
    actions = allowed_actions(Status(order.status), Role(user.role))
    if user.role == Role.RESIDENT.value and order.reporter != user.id:
        return []  # a resident acts on their own reports only
    if order.acknowledged_at is not None:
        actions = [a for a in actions if a is not Action.ACKNOWLEDGE]
    return actions


def _detail(session: SessionDep, order: WorkOrderRow, user: User) -> WorkOrderDetail:
    history = session.execute(
        select(WorkOrderHistory).where(WorkOrderHistory.order_id == order.id).order_by(WorkOrderHistory.id)
    ).scalars()
    events = session.execute(
        select(EventRow).where(EventRow.work_order_id == order.id).order_by(EventRow.received_at).limit(100)
    ).scalars()
    return WorkOrderDetail.model_validate(
        {
            **WorkOrderPublic.model_validate(order).model_dump(),
            "history": [HistoryPublic.model_validate(h) for h in history],
            "events": [EventPublic.model_validate(e) for e in events],
            "actions": _actions(user, order),
        }
    )


@router.get("/{order_id}", response_model=WorkOrderDetail, summary="One order with its history and events")
def get_order(order_id: RowId, ctx: CtxDep, session: SessionDep, user: CurrentUser) -> WorkOrderDetail:
    order = can_see(session, ctx.site, user, order_id)
    if order is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no work order {order_id} that you may see")
    return _detail(session, order, user)


@router.post(
    "/{order_id}/actions",
    response_model=WorkOrderDetail,
    summary="Act on an order: acknowledge, dispatch, accept, arrive, resolve, close (with rating), reopen",
    responses={403: {"description": "your role may not do this"}, 409: {"description": "not from this status"}},
)
def act(order_id: RowId, body: ActionRequest, ctx: CtxDep, session: SessionDep, user: CurrentUser) -> WorkOrderDetail:
    if can_see(session, ctx.site, user, order_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no work order {order_id} that you may see")
    role = Role(user.role)
    try:
        order = transition(
            session, order_id=order_id, action=body.action, actor=user.id, role=role, now=ctx.clock(),
            router=ctx.router, note=body.note, department=body.department, assignee=body.assignee,
            rating=body.rating, comment=body.comment,
        )  # fmt: skip
    except NotAllowed as exc:
        session.rollback()
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
    except WrongStatus as exc:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except BadRequest as exc:
        session.rollback()
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    session.commit()
    return _detail(session, order, user)
