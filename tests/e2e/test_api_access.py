"""Every route of the OpenAPI schema, called by nobody and by every role, answers what docs/security.md says.

The table "Access by route" in docs/security.md is the one statement of who may call what: ``-`` refused (401
for nobody, 403 for a signed-in role), anything else allowed (``yes``, ``own``, ``scoped``: any answer but 401
and 403 to a request made of placeholder ids and an empty body). A route in the schema and not in the table, or
in the table and not in the schema, fails the test too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from cloud.app import CloudApp
from cloud.workorders.states import Role
from harness import REPO, Site, add_api_users, api_settings, api_tokens

#: The table's columns, each played by one user of the test site.
CALLERS: dict[str, tuple[Any, str | None, str | None] | None] = {
    "nobody": None,
    "resident": (Role.RESIDENT, None, "b1-u1"),
    "grid worker": (Role.GRID_WORKER, "property", None),
    "property dept": (Role.DEPARTMENT, "property", None),
    "other dept": (Role.DEPARTMENT, "fire", None),
    "operator": (Role.OPERATOR, None, None),
    "admin": (Role.ADMIN, None, None),
}
USER_OF = {"resident": "r-1", "grid worker": "w-prop", "property dept": "prop", "other dept": "dept-fire",
           "operator": "op-1", "admin": "admin-1"}  # fmt: skip
#: What a path parameter is given: ids that do not exist (or, for gates and devices, ones that do).
PLACEHOLDER = {"order_id": "999999", "device_id": "smoke-1", "request_id": "999999", "pass_id": "nosuchpass0",
               "resident_id": "r-nobody", "gate": "north", "event_id": "no-such-event", "garage_id": "no-such-garage",
               "name": "0" * 32 + ".jpg"}  # fmt: skip
#: Routes the test does not call this way, and why.
NOT_CALLED = {("POST", "/api/v1/auth/token"): "signing in is for everyone (tests/e2e/test_sign_in.py)"}


def access_table() -> dict[tuple[str, str], dict[str, str]]:
    """docs/security.md's "Access by route": (method, path) -> caller -> cell."""
    text = (REPO / "docs" / "security.md").read_text()
    section = text.split("## Access by route", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    header = next(line for line in section.splitlines() if line.startswith("| route"))
    columns = [c.strip() for c in header.strip("|").split("|")][1:]
    assert columns == list(CALLERS), columns
    out: dict[tuple[str, str], dict[str, str]] = {}
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        method, path = cells[0].strip("`").split(" ", 1)
        out[(method, path)] = dict(zip(columns, cells[1:], strict=True))
    return out


@dataclass
class Stack:
    base: str
    site: Site
    db: Engine


@pytest.fixture
def stack(site: Site, db: Engine, tmp_path: Path) -> Iterator[Stack]:
    add_api_users(db, {USER_OF[c]: u for c, u in CALLERS.items() if u is not None})
    app = CloudApp(site.loaded, api_settings(db, tmp_path, door_open_timeout_s=0.5))
    app.start()
    try:
        yield Stack(f"http://127.0.0.1:{app.api_port}", site, db)
    finally:
        app.stop()


def call(c: httpx.Client, method: str, path: str) -> int:
    url = re.sub(r"\{(\w+)\}", lambda m: PLACEHOLDER[m.group(1)], path)
    if path == "/api/v1/live":  # a stream: its status line is the answer
        with c.stream("GET", url, timeout=10) as r:
            return r.status_code
    kwargs: dict[str, Any] = {}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {}
    return c.request(method, url, **kwargs).status_code


def test_every_route_answers_every_role_as_docs_security_says(stack: Stack) -> None:
    table = access_table()
    spec = httpx.get(f"{stack.base}/openapi.json", timeout=10).json()
    routes = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert sorted(routes - set(table) - set(NOT_CALLED)) == [], "routes missing from docs/security.md"
    assert sorted(set(table) - routes) == [], "docs/security.md lists routes the API does not have"
    wrong: list[str] = []
    tokens = api_tokens(stack.base, USER_OF.values())
    seen: dict[str, dict[str, int]] = {}
    for (method, path), cells in sorted(table.items(), key=lambda kv: "signout" in kv[0][1]):
        for caller, cell in cells.items():
            user = USER_OF.get(caller)
            if user is not None and "signout" in path:  # it ends the token it is called with: a fresh one each
                tokens.update(api_tokens(stack.base, [user]))
            headers = {"Authorization": f"Bearer {tokens[user]}"} if user else {}
            with httpx.Client(base_url=stack.base, headers=headers, timeout=15) as c:
                got = call(c, method, path)
            seen.setdefault(f"{method} {path}", {})[caller] = got
            refused = 401 if user is None else 403
            if cell == "-" and got != refused:
                wrong.append(f"{method} {path} by {caller}: {got}, docs say refused ({refused})")
            elif cell != "-" and got in (401, 403):
                wrong.append(f"{method} {path} by {caller}: {got}, docs say {cell}")
            elif got >= 500 and got not in (503, 504):
                wrong.append(f"{method} {path} by {caller}: {got}")
    assert wrong == [], "\n".join(f"{k}: {v}" for k, v in seen.items())
