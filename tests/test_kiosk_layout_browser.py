"""The kiosk screens a citizen uses, in real Chromium at the kiosk's three screen sizes: the
idle screen (its ID button and what the camera keeps), the ID and phone keypads (masked ID
number, ⌫ in one place, a message that says what happened to what was typed), the case file
using the whole screen, Done, and the contrast of every text."""
from types import SimpleNamespace

import pytest

from browser import screenshot
from kiosk.casefile_screen import CaseFileDesk, desk_blueprint
from kiosk.presenter import KioskCaseFilePresenter
from kiosk.screen import ScreenServer, ScreenState

SIZES = [(1080, 1920), (1920, 1080), (800, 1280), (1280, 800)]   # the three asked for, and a small landscape
ID_NUMBER = "44010619800101007X"
MIN_CONTRAST = 4.5      # WCAG AA for text

CASES = [
    {"case_number": "TX-2026-0107", "type": "个人所得税", "status": "ready", "counter": "3",
     "appointment_at": None},
    {"case_number": "TX-2026-0233", "type": "发票申领", "status": "waiting_documents", "counter": "",
     "appointment_at": "2099-03-02T10:30:00"},
    {"case_number": "TX-2026-1048", "type": "房产税", "status": "in_progress", "counter": "5",
     "appointment_at": None},
]


class RefusingClient:
    """The registry's answer to the phone digits: wrong, 2 tries left."""

    def case_details(self, session_id, digits):
        from device.client import Rejected
        raise Rejected(403, "wrong digits; 2 tries left")


@pytest.fixture
def kiosk(chromium_page):
    """The kiosk page with its desk and presenter; the agent's two requests are recorded."""
    state = ScreenState(hold_s=120)
    desk = CaseFileDesk(client=RefusingClient(), screen=state)
    agent = SimpleNamespace(ended=[], asked=[])
    desk.ender, desk.asker = agent.ended.append, (lambda: agent.asked.append(True))
    server = ScreenServer(state, 0, [desk_blueprint(desk)]).start()
    presenter = KioskCaseFilePresenter(state, None, desk)
    chromium_page.goto(server.url)
    yield SimpleNamespace(page=chromium_page, desk=desk, presenter=presenter, agent=agent)
    presenter.close()
    server.stop()


def citizen(session_id="s"):
    return SimpleNamespace(track=object(), greeting="林晓梅，您好！", name="林晓梅", language="zh",
                           citizen_key="c_1", session={"id": session_id})


def stranger(session_id="u"):
    return SimpleNamespace(track=object(), greeting="", name="", language="", citizen_key=None,
                           session={"id": session_id})


def wait_for_mode(page, mode):
    page.wait_for_selector(f'#screen[data-mode="{mode}"]')


def unknown_visitor_at_keypad(kiosk, answer):
    """An unknown visitor at the ID keypad, with a ticket; the ID check answers answer."""
    kiosk.desk.identifier = lambda visit, number, on_result: on_result(answer)
    visitor = stranger()
    kiosk.presenter.on_unknown(visitor)
    kiosk.presenter.on_ticket(visitor, "014", "", "2026-12-01")
    kiosk.page.wait_for_selector('#screen[data-mode="identify"] #cf-ticket .cf-ticket-number:text-is("014")')
    return visitor


def type_id(page, number=ID_NUMBER):
    for key in number:
        page.click(f"#id-keypad button:text-is('{key}')")


def case_file_with_keypad(kiosk):
    visit = citizen()
    kiosk.presenter.on_liveness_passed(visit)
    kiosk.presenter.on_case_file(visit, {"cases": CASES, "second_factor": True})
    kiosk.presenter.on_ticket(visit, "012", "3", "2026-12-01")
    kiosk.page.wait_for_selector('#cf-cases td:text-is("TX-2026-1048")')
    kiosk.page.wait_for_selector('.cf-ticket-inline .cf-ticket-number:text-is("012")')
    return visit


# --- what the page measures --------------------------------------------------------------------

OUTSIDE = """() => [...document.querySelectorAll("#screen *")].filter(e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== "hidden"
        && (r.left < -0.5 || r.top < -0.5 || r.right > innerWidth + 0.5 || r.bottom > innerHeight + 0.5);
}).map(e => (e.id || e.className || e.tagName) + ": " + e.textContent.trim().slice(0, 30))"""

# Every element with text of its own, shown: its colour composed over the backgrounds behind
# it (alpha and opacity included), and the WCAG contrast ratio of the two.
CONTRASTS = """() => {
  const rgba = c => { const p = c.match(/[\\d.]+/g).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const over = (top, below) => [0, 1, 2].map(i => top[i] * top[3] + below[i] * (1 - top[3])).concat([1]);
  const behind = el => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] >= 1) break;
    }
    return layers.reverse().reduce((below, top) => over(top, below), [255, 255, 255, 1]);
  };
  const lum = c => c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
                    .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const ratio = (a, b) => { const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x); return (hi + 0.05) / (lo + 0.05); };
  return [...document.querySelectorAll("body *")].filter(el =>
      [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())
      && el.getClientRects().length && getComputedStyle(el).visibility !== "hidden").map(el => {
    let opacity = 1;
    for (let e = el; e; e = e.parentElement) opacity *= parseFloat(getComputedStyle(e).opacity);
    const bg = behind(el), fg = rgba(getComputedStyle(el).color);
    return {text: el.textContent.trim().slice(0, 40), ratio: ratio(over([fg[0], fg[1], fg[2], fg[3] * opacity], bg), bg)};
  });
}"""


def assert_fits(page, where):
    """Nothing shown reaches past the screen's edges, and the page does not scroll."""
    assert page.evaluate(OUTSIDE) == [], where
    assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth"), where
    assert page.evaluate("document.scrollingElement.scrollHeight <= innerHeight"), where


def assert_readable(page, where):
    low = [(c["text"], round(c["ratio"], 2)) for c in page.evaluate(CONTRASTS) if c["ratio"] < MIN_CONTRAST]
    assert low == [], where


def lines_of(page, selector):
    return page.eval_on_selector(selector, """e => { const r = document.createRange();
        r.selectNodeContents(e); return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size; }""")


def box(page, selector):
    return page.locator(selector).bounding_box()


def overlap(a, b):
    """True when the two boxes share any area."""
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


# --- the idle screen ---------------------------------------------------------------------------

@pytest.mark.parametrize("width, height", SIZES)
def test_idle_screen_says_what_is_kept_and_its_id_button_opens_the_id_keypad(kiosk, width, height):
    page = kiosk.page
    page.set_viewport_size({"width": width, "height": height})
    wait_for_mode(page, "idle")
    notice = page.inner_text("#privacy-notice")
    assert "人脸识别" in notice and "recognises faces" in notice
    assert "照片" in notice and "a photo and a record of the visit for a clerk to review" in notice
    assert "retention period" in notice         # the bureau's setting, not a number made up here
    assert page.is_visible("#privacy-notice") and page.is_visible("#idle-id")
    assert not page.is_visible("#done")         # nothing to end on the idle screen
    assert_fits(page, (width, height))
    assert_readable(page, "idle")
    screenshot(page, f"kiosk_layout_idle_{width}x{height}")

    page.click("#idle-id")
    wait_for_mode(page, "identify")
    assert kiosk.agent.asked == [True]          # the agent looks for the face at the screen
    assert page.is_visible("#id-keypad button.id-ok")
    assert "ID number" in page.inner_text("#id-prompt-en")
    type_id(page, ID_NUMBER[:4])
    page.click("#id-keypad button.id-ok")       # too short: nothing is sent, and it says why
    page.wait_for_selector('#id-message:has-text("Type the whole ID number, then press OK")')
    assert kiosk.agent.asked == [True]
    type_id(page, ID_NUMBER[4:])
    page.click("#id-keypad button.id-ok")       # OK before the camera found them: the number stays
    page.wait_for_selector('#id-message:has-text("Look at the screen, then press OK again")')
    assert page.inner_text("#id-typed").endswith("007X")
    assert kiosk.agent.asked == [True, True]    # and the agent is asked again for the face


# --- the keypads -------------------------------------------------------------------------------

@pytest.mark.parametrize("width, height", SIZES)
def test_the_id_number_is_masked_but_its_last_4_and_stays_on_one_line(kiosk, width, height):
    page = kiosk.page
    page.set_viewport_size({"width": width, "height": height})
    unknown_visitor_at_keypad(kiosk, "no_blink")
    type_id(page, ID_NUMBER[:9])
    assert page.inner_text("#id-typed") == "●●●●●6 198_____ ____"   # the last 4 typed, to check each key
    type_id(page, ID_NUMBER[9:])
    shown = page.inner_text("#id-typed")
    assert shown == "●●●●●● ●●●●●●●● 007X" and "4401" not in shown
    assert lines_of(page, "#id-typed") == 1
    typed = box(page, "#id-typed")
    assert typed["x"] >= 0 and typed["x"] + typed["width"] <= width
    assert page.eval_on_selector("#id-typed", "e => e.scrollWidth <= e.clientWidth")
    if width > height:      # landscape: the number has the width, the keypad beside it
        assert box(page, "#id-keypad")["x"] > typed["x"] + typed["width"]
        assert typed["width"] > 0.35 * width
    assert_fits(page, (width, height))


def test_backspace_is_in_the_same_place_on_the_id_and_the_phone_keypad(kiosk):
    page = kiosk.page
    page.set_viewport_size({"width": 1920, "height": 1080})

    def place_of_backspace(pad):
        keys = {k.inner_text(): k.bounding_box() for k in page.query_selector_all(f"#{pad} button")}
        back, seven, zero = keys["⌫"], keys["7"], keys["0"]
        return (round(back["x"]) == round(seven["x"]),       # the left column, under 7
                back["y"] > seven["y"] and round(back["y"]) == round(zero["y"]))   # beside 0

    unknown_visitor_at_keypad(kiosk, "no_match")
    id_pad = place_of_backspace("id-keypad")
    case_file_with_keypad(kiosk)
    page.wait_for_selector("#cf-factor:not([hidden])")
    assert place_of_backspace("cf-keypad") == id_pad == (True, True)


@pytest.mark.parametrize("width, height", SIZES)
def test_after_an_error_the_message_says_what_happened_to_what_was_typed(kiosk, width, height):
    page = kiosk.page
    page.set_viewport_size({"width": width, "height": height})
    unknown_visitor_at_keypad(kiosk, "invalid")
    type_id(page)
    page.click("#id-keypad button.id-ok")
    page.wait_for_selector('#id-message:has-text("It was cleared: please type it again")')
    assert "已清除" in page.inner_text("#id-message")
    assert page.inner_text("#id-typed") == "______ ________ ____"        # emptied, as it says
    # an answer that asks for OK again keeps the number to press OK on
    kiosk.desk.identifier = lambda visit, number, on_result: on_result("no_blink")
    type_id(page)
    page.click("#id-keypad button.id-ok")
    page.wait_for_selector('#id-message:has-text("press OK again")')
    assert page.inner_text("#id-typed").endswith("007X")
    assert_fits(page, (width, height))
    assert_readable(page, "keypad with an error")
    screenshot(page, f"kiosk_layout_keypad_error_{width}x{height}")


# --- the case file and Done --------------------------------------------------------------------

@pytest.mark.parametrize("width, height", SIZES)
def test_the_case_file_uses_the_whole_screen_and_a_wrong_try_says_the_digits_were_cleared(
        kiosk, width, height):
    page = kiosk.page
    page.set_viewport_size({"width": width, "height": height})
    case_file_with_keypad(kiosk)
    for key in "1234":
        page.click(f"#cf-keypad button:text-is('{key}')")
    page.click("#cf-keypad button.cf-ok")
    page.wait_for_selector('#cf-message:has-text("They were cleared: please type them again")')
    screenshot(page, f"kiosk_layout_casefile_{width}x{height}")     # before the checks: to look at
    assert "2" in page.inner_text("#cf-message") and page.inner_text("#cf-digits") == "____"
    assert_fits(page, (width, height))
    assert_readable(page, "case file")
    bottom = max(box(page, sel)["y"] + box(page, sel)["height"] for sel in ["#cf-factor", "#cf-cases"])
    assert bottom > 0.7 * height                # the file is spread over the screen, not its top
    assert lines_of(page, "#cf-cases tbody td:first-child") == 1
    done = box(page, "#done")       # bottom left: below the file in portrait, beside the keypad in landscape
    for selector in ["#cf-factor", "#cf-cases", ".cf-ticket-inline"]:
        assert not overlap(done, box(page, selector)), selector


@pytest.mark.parametrize("width, height", SIZES)
def test_done_returns_the_screen_to_idle_and_ends_the_visit_on_the_agent(kiosk, width, height):
    page = kiosk.page
    page.set_viewport_size({"width": width, "height": height})
    visit = case_file_with_keypad(kiosk)
    assert "Done" in page.inner_text("#done") and "结束" in page.inner_text("#done")
    page.click("#done")
    wait_for_mode(page, "idle")
    assert kiosk.agent.ended == [visit.track]
    assert kiosk.desk.state()["mode"] is None
    kiosk.presenter.on_ticket(visit, "012", "3", "2026-12-01")   # late: shown no more
    page.wait_for_timeout(900)
    assert page.get_attribute("#screen", "data-mode") == "idle"
    assert "林晓梅" not in page.inner_text("#screen")


@pytest.mark.parametrize("mode", ["blink", "notice", "identify"])
def test_done_is_on_every_screen_of_a_visit_and_every_text_is_readable(kiosk, mode):
    page = kiosk.page
    page.set_viewport_size({"width": 1080, "height": 1920})
    visit = citizen()
    if mode == "blink":
        kiosk.presenter.on_blink_request(visit)
        kiosk.presenter.on_blink_progress(visit, 4, "look", 1)
    elif mode == "notice":
        kiosk.presenter.on_liveness_failed(visit)
        kiosk.presenter.on_ticket(visit, "015", "", "2026-12-01")
    else:
        unknown_visitor_at_keypad(kiosk, "too_many")
    wait_for_mode(page, mode)
    assert page.is_visible("#done")
    assert_fits(page, mode)
    assert_readable(page, mode)
    page.click("#done")
    wait_for_mode(page, "idle")
    assert len(kiosk.agent.ended) == 1
