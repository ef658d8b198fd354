"""The control-room page, served by the cloud's FastAPI app: no separate server to run.

Each view is a server-rendered template (labels in the chosen language, the
navigation) plus a small script that reads the JSON API with the signed-in
user's token and follows the live feed. The pages themselves hold no data, so
they need no sign-in; every figure on them comes through the API's role checks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Cookie, FastAPI, Header, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

import sc
from cloud.workorders.states import TRANSITIONS, Status

from .i18n import LANGS, labels, pick_lang

__all__ = ["VIEWS", "mount_web"]

HERE = Path(__file__).parent
#: view id -> the navigation label key; the order is the navigation's
VIEWS = ("wall", "orders", "devices", "supervision", "site")
LANG_COOKIE = "sc_lang"
_templates = Jinja2Templates(directory=HERE / "templates")
#: the state machine as the scripts see it (cloud.workorders.states owns it): statuses in order, and per action
#: the statuses it applies to and the roles that may take it
RULES_JSON = json.dumps(
    {
        "statuses": [s.value for s in Status],
        "actions": {a.value: {"from": sorted(r.sources), "roles": sorted(r.roles)} for a, r in TRANSITIONS.items()},
    }
)
_router = APIRouter(include_in_schema=False)


@_router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui/wall", status.HTTP_307_TEMPORARY_REDIRECT)


@_router.get("/ui", response_class=HTMLResponse)
@_router.get("/ui/{view}", response_class=HTMLResponse)
def page(
    request: Request,
    view: str = "wall",
    lang: Annotated[str | None, Query()] = None,
    cookie_lang: Annotated[str | None, Cookie(alias=LANG_COOKIE)] = None,
    accept_language: Annotated[str | None, Header()] = None,
) -> Response:
    if view not in (*VIEWS, "login"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no page {view!r} (pages: {', '.join(VIEWS)}, login)")
    chosen = pick_lang(asked=lang, cookie=cookie_lang, accept_language=accept_language)
    table = labels(chosen)
    response = _templates.TemplateResponse(
        request,
        f"{view}.html",
        {
            "view": view,
            "views": VIEWS,
            "lang": chosen.value,
            "other_langs": [x.value for x in LANGS if x is not chosen],
            "t": table,
            # the page's settings as data, not as a script (the Content-Security-Policy runs no inline script);
            # "</" escaped so that no text can close the element
            "config_json": json.dumps(
                {"lang": chosen.value, "view": view, "labels": table, "rules": json.loads(RULES_JSON)},
                ensure_ascii=False,
            ).replace("</", "<\\/"),
            "version": sc.__version__,
        },
    )
    if lang == chosen.value:
        response.set_cookie(LANG_COOKIE, chosen.value, max_age=365 * 86400, samesite="strict")
    return response


def mount_web(api: FastAPI) -> None:
    """Add the pages and their static files (scripts, styles, the vendored chart library) to ``api``."""
    api.include_router(_router)
    api.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
