"""The site as the control room draws it: the grid tree with names, departments, workers, gates, garages.

Everything here comes from the site config the cloud was started with; the
page uses it to show a location as "street > community > grid > building" and
to offer the workers an order can be dispatched to.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from cloud.workorders.states import Role

from ..deps import CtxDep, require
from ..schemas import SiteNode, SitePublic, SiteRef, WorkerPublic

router = APIRouter(prefix="/api/v1", tags=["site"])
Staff = Depends(require(Role.OPERATOR, Role.ADMIN, Role.GRID_WORKER, Role.DEPARTMENT))


@router.get("/site", response_model=SitePublic, dependencies=[Staff], summary="The grid tree, departments, workers")
def get_site(ctx: CtxDep) -> SitePublic:
    site = ctx.site
    street = site.street
    nodes = [SiteNode(id=street.id, name=street.name, level="street", parent=None)]
    for c in street.communities:
        nodes.append(SiteNode(id=c.id, name=c.name, level="community", parent=street.id))
        for m in c.micro_grids:
            nodes.append(SiteNode(id=m.id, name=m.name, level="micro_grid", parent=c.id))
            for b in m.buildings:
                nodes.append(SiteNode(id=b.id, name=b.name, level="building", parent=m.id))
                nodes += [SiteNode(id=s.id, name=s.name, level="stairwell", parent=b.id) for s in b.stairwells]
            nodes += [SiteNode(id=p.id, name=p.name, level=p.type.value, parent=m.id) for p in m.places]
    return SitePublic(
        id=site.site.id,
        name=site.site.name,
        timezone=site.site.timezone,
        tree=nodes,
        departments=[SiteRef(id=d.id, name=d.name, kind=d.kind.value) for d in site.departments],
        workers=[WorkerPublic(id=w.id, name=w.name, department=w.department, grids=w.grids) for w in site.workers],
        gates=[SiteRef(id=g.id, name=g.name, kind="gate") for g in site.gates],
        garages=[SiteRef(id=g.id, name=g.name, kind="garage") for g in site.garages],
    )
