"""axe-core's rules (tests/vendor/axe-core) on the console pages in real Chromium, in zh and en
at 1,440 and 800 px: no serious or critical issue (contrast, names of controls and images,
labels, the page's language, landmarks)."""
from pathlib import Path

import pytest

from test_pages_zh_browser import PAGES, WIDTHS, hall, show, signed_in  # noqa: F401 (a fixture)

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
SERIOUS = ("serious", "critical")
MORE_PAGES = {"tickets": "/console/tickets", "duplicates": "/admin/duplicates/",
              "duplicate": "/admin/duplicates/1", "users": "/admin/users",
              "admin": "/admin/", "citizens": "/citizens/"}


def serious_issues(page):
    """[rule: where] of axe's serious and critical findings on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ["violations"]});
        return r.violations.map(v => ({id: v.id, impact: v.impact,
            where: v.nodes.slice(0, 3).map(n => n.target.join(" ") + " " + (n.failureSummary || "")
                                                 .split("\\n").slice(1, 2).join(""))}));
    }""")
    return [f"{v['id']}: {w}" for v in found if v["impact"] in SERIOUS for w in v["where"]]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_console_pages_have_no_serious_accessibility_issue(app, db, live_server, chromium_page, hall,
                                                            width, locale):
    base = live_server.url
    newest = db.execute("SELECT id FROM sessions ORDER BY received_at DESC LIMIT 1").fetchone()[0]
    unknown = db.execute("SELECT id FROM sessions WHERE citizen_id IS NULL LIMIT 1").fetchone()[0]
    pages = {**PAGES, **MORE_PAGES, "session": f"/console/sessions/{newest}",
             "unknown visitor": f"/console/sessions/{unknown}"}
    page = signed_in(chromium_page.context.browser, base, locale, width, bypass_csp=True)
    problems = {}
    for name, path in pages.items():
        if name in PAGES:
            show(page, base, name, hall)
        else:
            page.goto(base + path.format(**hall))
            page.wait_for_load_state("load")
        issues = serious_issues(page)
        if issues:
            problems[name] = issues
    page.context.close()
    assert problems == {}


def test_the_sign_in_page_has_no_serious_accessibility_issue(live_server, chromium_page):
    page = chromium_page.context.browser.new_page(bypass_csp=True, locale="zh-CN")
    page.goto(live_server.url + "/login")
    assert serious_issues(page) == []
    page.close()


def test_the_check_finds_what_it_looks_for(chromium_page):
    """The rules run: an image with no text and grey text on grey are found."""
    chromium_page.set_content('<html lang="en"><body><main><h1>x</h1><img src="data:,">'
                              '<p style="color:#999;background:#aaa">faint words</p></main></body></html>')
    found = " ".join(serious_issues(chromium_page))
    assert "image-alt" in found and "color-contrast" in found


@pytest.fixture
def kiosk_page(chromium):
    """The kiosk screen with its desk, in a context that lets the test inject axe."""
    from types import SimpleNamespace
    from kiosk.casefile_screen import CaseFileDesk, desk_blueprint
    from kiosk.presenter import KioskCaseFilePresenter
    from kiosk.screen import ScreenServer, ScreenState
    from test_kiosk_layout_browser import RefusingClient
    state = ScreenState(hold_s=120)
    desk = CaseFileDesk(client=RefusingClient(), screen=state)
    server = ScreenServer(state, 0, [desk_blueprint(desk)]).start()
    presenter = KioskCaseFilePresenter(state, None, desk)
    page = chromium.new_context(bypass_csp=True).new_page()
    page.goto(server.url)
    yield SimpleNamespace(page=page, desk=desk, presenter=presenter)
    presenter.close()
    server.stop()


@pytest.mark.parametrize("width, height", [(1080, 1920), (1920, 1080), (800, 1280)])
def test_the_kiosk_screen_has_no_serious_accessibility_issue(kiosk_page, width, height):
    from test_kiosk_layout_browser import case_file_with_keypad, stranger, unknown_visitor_at_keypad, wait_for_mode
    page = kiosk_page.page
    page.set_viewport_size({"width": width, "height": height})
    problems = {}
    wait_for_mode(page, "idle")
    problems["idle"] = serious_issues(page)
    case_file_with_keypad(kiosk_page)
    problems["case file"] = serious_issues(page)
    kiosk_page.desk.done()
    unknown_visitor_at_keypad(kiosk_page, "no_match")
    problems["ID keypad"] = serious_issues(page)
    kiosk_page.presenter.on_liveness_failed(stranger("v"))
    problems["notice"] = serious_issues(page)
    assert {mode: found for mode, found in problems.items() if found} == {}
