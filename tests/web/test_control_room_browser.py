"""The control room as people use it: headless Chromium (Debian's, driven by Playwright) against the demo stack
(`sc demo`'s own Mosquitto, simulated devices, gateways, cloud and API, started in-process).

A smoke detector in the demo scenario raises an alarm; it appears on the operator's wall within a second of the
order being opened; the operator acknowledges and dispatches it; the grid worker, on a phone-sized screen,
accepts, arrives and resolves it; the operator closes it with the resident's rating. Every main view is checked
at 1366x768 and the screenshots go to docs/screenshots/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, ViewportSize, expect, sync_playwright

from firmware_sim.scenario import Step
from harness import wait_until
from sc.config.loader import load_site_config
from sc.demo import DemoStack

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("SC_CHROMIUM", "/usr/bin/chromium"))
SHOTS = REPO / "docs" / "screenshots"
PASSWORD = "demo-password-1"
DESK: ViewportSize = {"width": 1366, "height": 768}
PHONE: ViewportSize = {"width": 390, "height": 844}
# what the closed network here needs (no background connections, no sandbox as root), as the env notes say
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    loaded = load_site_config(REPO / "configs" / "site.example.yaml")
    stack = DemoStack(
        loaded,
        scenario=REPO / "configs" / "scenarios" / "demo.yaml",
        speed=1.0,
        password=PASSWORD,
        workdir=tmp_path_factory.mktemp("demo"),
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: ./scripts/setup.sh installs Debian's chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def sign_in(browser: Browser, base: str, user: str, *, viewport: ViewportSize, lang: str = "en") -> Page:
    page = browser.new_context(viewport=viewport, locale="zh-CN" if lang == "zh" else "en-US").new_page()
    page.on("pageerror", lambda exc: pytest.fail(f"script error on {page.url}: {exc}"))
    page.on("console", lambda msg: _no_csp_violation(page, msg))
    page.goto(f"{base}/ui/login?lang={lang}")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/ui/login" not in url)
    return page


#: what the pages may try to fetch from elsewhere and are refused, as they should be: ReDoc's "powered by" logo
#: (a site without internet could not show it anyway)
ELSEWHERE = ("https://cdn.redoc.ly/",)
#: what the Content-Security-Policy refused during the current test (checked after each test: raising inside a
#: Playwright callback would end the browser connection rather than fail the test)
CSP_VIOLATIONS: list[str] = []


@pytest.fixture(autouse=True)
def no_csp_violations() -> Iterator[None]:
    CSP_VIOLATIONS.clear()
    yield
    assert CSP_VIOLATIONS == [], "the pages' Content-Security-Policy refused something they need"


def _no_csp_violation(page: Page, msg: ConsoleMessage) -> None:
    """The pages run under the API's Content-Security-Policy: anything it refused is a bug of the page."""
    if msg.type == "error" and "Content Security Policy" in msg.text and not any(x in msg.text for x in ELSEWHERE):
        CSP_VIOLATIONS.append(f"{page.url}: {msg.text}")


def offline(page: Page, base: str) -> list[str]:
    """Cut the page off from everything but ``base`` (a site without internet); returns what it tried to reach."""
    tried: list[str] = []

    def route(r: Route) -> None:
        if r.request.url.startswith(base):
            r.continue_()
        else:
            tried.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return tried


def test_the_api_docs_render_without_internet_and_every_page_sends_security_headers(
    demo: DemoStack, browser: Browser
) -> None:
    base = demo.api_url
    page = browser.new_context(viewport=DESK).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: _no_csp_violation(page, msg))
    tried = offline(page, base)
    page.goto(f"{base}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Smart-community cloud API", timeout=20_000)
    expect(page.locator(".opblock-tag").first).to_be_visible()
    page.goto(f"{base}/redoc")
    expect(page.locator("redoc h1").first).to_contain_text("Smart-community cloud API", timeout=20_000)
    assert errors == [] and tried == []
    with httpx.Client(base_url=base, timeout=10) as c:
        for path in ("/docs", "/ui/login", "/api/v1/work-orders", "/openapi.json", "/ui/static/app.js"):
            h = c.get(path).headers
            assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY", path
            csp = h["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def smoke_order(demo: DemoStack, device: str = "smoke-hp-b1-u1") -> dict[str, object] | None:
    with httpx.Client(base_url=demo.api_url, timeout=5) as c:
        tok = c.post("/api/v1/auth/token", data={"username": "operator", "password": PASSWORD}).json()["access_token"]
        r = c.get("/api/v1/work-orders", params={"category": "fire"}, headers={"Authorization": f"Bearer {tok}"})
        orders = [o for o in r.json() if o["kind"] == "smoke_alarm" and o["device"] == device]
    return orders[0] if orders else None


#: the detector this test sets off itself (the demo scenario's own smoke alarm, on smoke-hp-b1-u1, may come before
#: the wall is open)
DETECTOR = "smoke-hp-b1-u2"


def test_an_alarm_goes_from_the_wall_to_a_rated_close(demo: DemoStack, browser: Browser) -> None:
    base = demo.api_url
    wall = sign_in(browser, base, "operator", viewport=DESK)
    assert wall.url.endswith("/ui/wall")
    expect(wall.locator("#live")).to_have_class("live on", timeout=10_000)
    # smoke in building 1, stair 2: the simulated detector's density goes over its alarm threshold
    assert demo.sim is not None
    demo.sim.sim.apply(Step(at=0, device=DETECTOR, set={"smoke_density": 14.0}))
    assert wait_until(lambda: smoke_order(demo, DETECTOR) is not None, 30)
    order = smoke_order(demo, DETECTOR)
    assert order is not None
    oid = int(str(order["id"]))
    card = wall.locator(f"#alarm-{oid}")
    expect(card).to_be_visible(timeout=10_000)
    expect(card).to_contain_text("Smoke alarm")
    # (how soon after its order the card is on the wall: bench/control_room_latency.py)
    expect(card).to_contain_text("Building 1 › 2单元 Stair 2")  # the grid tree's names, not ids
    expect(card).to_have_class("alarm sev-critical unacked")
    # acknowledge: the sound stops, the card says who saw it; dispatch to the fire warden on duty
    card.get_by_role("button", name="Acknowledge").click()
    expect(card).to_contain_text("acknowledged by operator")
    expect(card.get_by_role("button", name="Acknowledge")).to_be_hidden()
    card.locator("select.worker").select_option("w-liu")
    card.get_by_role("button", name="Dispatch").click()
    expect(wall.locator("#toast")).not_to_have_class("show bad")

    # the grid worker, on a phone: sees only their order, accepts, arrives, resolves
    phone = sign_in(browser, base, "w-liu", viewport=PHONE)
    assert phone.url.endswith("/ui/orders")
    mine = phone.locator(f"#order-{oid}")
    expect(mine).to_be_visible(timeout=10_000)
    mine.click()
    detail = phone.locator("#detail")
    expect(detail).to_be_visible()
    for action, status in (("accept", "Accepted"), ("arrive", "On site"), ("resolve", "Resolved")):
        detail.locator(f"button[data-action={action}]").click()
        expect(detail.locator(".status-line")).to_contain_text(status)
        if action == "accept":
            shot(phone, "phone-order")
    # the wall drops it once resolved (live, no reload)
    expect(wall.locator(f"#alarm-{oid}")).to_have_count(0, timeout=10_000)

    # the operator closes it with the resident's rating
    board = sign_in(browser, base, "operator", viewport=DESK)
    board.goto(f"{base}/ui/orders#{oid}")
    detail = board.locator("#detail")
    expect(detail.locator("button[data-action=close]")).to_be_visible(timeout=10_000)
    detail.locator("select.rating").select_option("4")
    detail.locator("input.comment").fill("came within ten minutes")
    detail.locator("button[data-action=close]").click()
    expect(detail.locator(".status-line")).to_contain_text("Closed")
    expect(board.locator(f"#order-{oid}")).to_contain_text("★★★★☆")
    shot(board, "orders")
    history = [li.inner_text() for li in detail.locator("ol.history").first.locator("li").all()]
    steps = [h.split(" · ")[0].split(" ", 1)[1] for h in history]
    assert [s for s in steps if s not in ("Device cleared", "Alarm again")] == [
        "Opened", "Dispatch", "Acknowledge", "Dispatch", "Accept", "Arrived", "Resolved", "Close",
    ]  # fmt: skip
    final = smoke_order(demo, DETECTOR)
    assert final is not None and (final["status"], final["rating"]) == ("closed", 4)


def test_devices_supervision_and_the_garage_map(demo: DemoStack, browser: Browser) -> None:
    base = demo.api_url
    assert wait_until(lambda: smoke_order(demo) is not None, 30)  # the demo's smoke alarm has happened
    page = sign_in(browser, base, "operator", viewport=DESK)
    page.goto(f"{base}/ui/devices")
    rows = page.locator("#device-table tbody tr")
    expect(rows.first).to_be_visible(timeout=10_000)
    total = rows.count()
    page.select_option("select[name=kind]", "smoke")
    assert 0 < rows.count() < total
    page.select_option("#chart-range", "600")
    page.locator("#device-table tbody tr", has_text="smoke-hp-b1-u1").click()
    expect(page.locator("#chart-title")).to_contain_text("smoke-hp-b1-u1")
    # the detector's smoke density, from InfluxDB, drawn by Chart.js
    page.wait_for_function("() => Chart.getChart('chart')?.data.datasets.some((d) => d.label === 'smoke density')")
    peak = page.evaluate(
        "() => Math.max(...Chart.getChart('chart').data.datasets.find((d) => d.label === 'smoke density')"
        ".data.map((p) => p.y ?? 0))"
    )
    assert peak > 8, f"the chart's smoke density peaks at {peak}: the demo's alarm should show"
    expect(page.locator("#chart-empty")).to_be_hidden()
    shot(page, "devices")

    page.goto(f"{base}/ui/supervision")
    stats = page.locator("#stats tbody tr")
    expect(stats.first).to_be_visible(timeout=10_000)
    shot(page, "supervision")
    # a chosen period: yesterday alone has none of the demo's orders, today has them
    page.select_option("select[name=days]", "custom")
    yesterday = page.evaluate("() => new Date(Date.now() - 86400000).toLocaleDateString('sv')")
    today = page.evaluate("() => new Date().toLocaleDateString('sv')")
    page.fill("input[name=from]", yesterday)
    page.fill("input[name=to]", yesterday)
    expect(stats).to_have_count(0)
    page.fill("input[name=to]", today)
    expect(stats.first).to_be_visible()

    page.goto(f"{base}/ui/site")
    # the demo's north gate lets its resident in by face (then catches the tailgater behind them)
    entry = page.locator("#entries tbody tr", has_text="r-1-0101")
    expect(entry.first).to_contain_text("let in", timeout=30_000)
    expect(entry.first).to_contain_text("face")
    lit = page.locator("#garage-map circle.light")
    expect(lit.first).to_be_attached(timeout=10_000)
    assert lit.count() == len(demo.site.garages[0].lights)
    expect(page.locator("#garage-summary")).to_contain_text("lights full", timeout=10_000)
    page.get_by_role("button", name="Full").click()
    expect(page.locator("#toast")).to_contain_text("Lights: Full", timeout=10_000)
    expect(page.locator(f"#light-{demo.site.garages[0].lights[0].id}")).to_have_attribute("data-level", "100")
    shot(page, "site")
    page.get_by_role("button", name="Auto").click()


def test_a_wrong_password_is_refused_and_pages_need_a_sign_in(demo: DemoStack, browser: Browser) -> None:
    page = browser.new_context(viewport=DESK).new_page()
    page.goto(f"{demo.api_url}/ui/orders")
    page.wait_for_url("**/ui/login?next=%2Fui%2Forders")  # nobody signed in: to the sign-in page, and back after
    page.fill("input[name=username]", "operator")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    expect(page.locator("#signin-error")).to_be_visible()
    expect(page.locator("#signin-error")).to_have_text("Wrong user or password")
    assert "/ui/login" in page.url
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/orders")
    # a token the API no longer honours (expired, or signed out elsewhere) sends the person back to sign in; the
    # page is opened afresh (the open one's own polling would send it to sign in too, racing a reload)
    page.evaluate("() => localStorage.setItem('sc_token', 'stale')")
    context = page.context
    page.close()
    page = context.new_page()
    page.goto(f"{demo.api_url}/ui/orders")
    page.wait_for_url("**/ui/login?next=%2Fui%2Forders")


def test_chinese_labels_a_phone_sized_wall_and_gate_snapshots(demo: DemoStack, browser: Browser) -> None:
    page = sign_in(browser, demo.api_url, "operator", viewport=PHONE, lang="zh")
    expect(page.locator("h1")).to_contain_text("实时告警")
    expect(page.locator("nav")).to_contain_text("工单")
    expect(page.locator("#live")).to_have_class("live on", timeout=10_000)
    # the demo gate's tailgating alarm, with the snapshot the gate took (fetched with the operator's token)
    tailgating = page.locator("article.alarm.sev-major", has_text="尾随")
    expect(tailgating).to_be_visible(timeout=30_000)
    snap = tailgating.locator("img.snap")
    expect(snap).to_be_visible(timeout=10_000)
    assert snap.evaluate("(img) => img.complete && img.naturalWidth") > 100
    # nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, "phone-wall-zh")
    desk = sign_in(browser, demo.api_url, "operator", viewport=DESK)
    expect(desk.locator("article.alarm", has_text="Tailgating").locator("img.snap")).to_be_visible(timeout=10_000)
    shot(desk, "wall")
