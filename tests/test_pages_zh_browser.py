"""The console and admin pages in real Chromium, in Chinese and English, at 1,440 and 800 px.

On a Chinese page no visible text is English (names and codes a person or a file wrote are
marked translate="no", the HTML way to say "not words to translate"); no table cell shows one
character per line; the dashboard counts on whole-number ticks; the calibration charts keep
their legends off the plot and draw every series their legends name. Screenshots go to
tests/_artifacts/ (zh_<page>_<width>.png, en_<page>_<width>.png) for a person to look at.
"""
import re
from datetime import datetime, timedelta

import numpy as np
import pytest

from browser import screenshot
from conftest import PASSWORD
from db import transaction
from db.queries import audit
from helpers import add_case, add_citizen, add_device, add_session, add_template, enrol

WIDTHS = (1440, 800)
DEVICES = (("east-01", "kiosk", "hall-a"), ("lobby-02", "robot", "hall-a"), ("west-03", "kiosk", "hall-b"))
USERS = ("admin", "clerk")
# English words allowed on a Chinese page, each for a reason: file formats and an algorithm by
# their own names, and the language switch, which names English in English.
ALLOWED = {"CSV", "zip", "SHA", "English"}
# The test's own data, shown where a page this change does not own prints it unmarked (the
# signed-in user's name in the top bar, a device's name in the queue): names, not UI text.
DATA_WORDS = {w for name, _, site in DEVICES for w in re.findall(r"[A-Za-z]{3,}", name + " " + site)} | set(USERS)

VISIBLE_ENGLISH = """() => {
  const words = [];
  const skip = (el) => !el || el.closest('script, style, title, [translate="no"]');
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node; (node = walker.nextNode());) {
    const el = node.parentElement;
    // an <option> shows when its menu opens; anything else only when rendered
    if (skip(el) || (el.tagName !== "OPTION" && !el.checkVisibility())) continue;
    // {name}: a placeholder the admin types as it is written, code and not words
    const text = node.textContent.replace(/\{[A-Za-z_]+\}/g, "");
    for (const m of text.matchAll(/[A-Za-z]{3,}/g)) words.push(m[0] + " in: " + node.textContent.trim().slice(0, 60));
  }
  for (const el of document.querySelectorAll("[placeholder]")) {
    if (skip(el)) continue;
    for (const m of el.placeholder.matchAll(/[A-Za-z]{3,}/g)) words.push(m[0] + " in placeholder");
  }
  return words;
}"""

# A cell whose text wraps onto several lines, none wider than two characters of its font:
# one character per line (待/审/核).
ONE_CHARACTER_LINES = """() => {
  const bad = [];
  for (const cell of document.querySelectorAll("main td, main th")) {
    if (!cell.checkVisibility()) continue;
    const text = cell.innerText.replace(/\\s+/g, "");
    if ([...text].length < 2) continue;
    const em = parseFloat(getComputedStyle(cell).fontSize);
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    const lines = new Map();
    for (let node; (node = walker.nextNode());) {
      if (!node.textContent.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      for (const r of range.getClientRects()) {
        if (r.width < 1) continue;
        const top = Math.round(r.top);
        lines.set(top, Math.max(lines.get(top) || 0, r.width));
      }
    }
    const widths = [...lines.values()];
    if (widths.length >= 2 && Math.max(...widths) < 2 * em) bad.push(cell.innerText.trim().slice(0, 40));
  }
  return bad;
}"""

RECT = "el => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }"


def overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.fixture
def hall(app, db, face_model):
    """Three devices and a morning of visits; two citizens with cases; a registry of 45 faces
    big enough to measure, one of them matched by a record held as a possible duplicate; audit
    entries with details of several kinds."""
    devices = [add_device(db, name, kind, site)[0] for name, kind, site in DEVICES]
    wang = add_citizen(app, db)
    add_template(db, wang, "barack_obama")
    li = add_citizen(app, db, "李建国", "110101198001010053", ("joe_biden", 1), "13900139000")
    add_case(db, wang, "TAX-2026-0417", "个人所得税汇算", "waiting_documents", "2025 年度汇算清缴，需补充工资流水", "5")
    add_case(db, li, "TAX-2026-0533", "发票申领", "open", "需补充营业执照")
    spread = {"dlib": 0.6}.get(face_model.name, 1.3)
    rng = np.random.default_rng(14)
    directions = rng.normal(size=(45, face_model.dims))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    registry = [enrol(db, "barack_obama", name=f"市民{i}", encodings=[face])
                for i, face in enumerate(directions * spread / np.sqrt(2))]
    with transaction(db):
        db.execute("INSERT INTO duplicate_reviews (id_number, record, encoding, face_model, match_citizen_id,"
                   " distance, threshold, status, created_at) VALUES (?, '{}', ?, ?, ?, 0.2, 0.4, 'pending',"
                   " '2026-01-01T00:00:00Z')", ["440106198001010012",
                                                 face_model.to_blob(np.zeros(face_model.dims, np.float32)),
                                                 face_model.id, registry[0]])
    now = datetime.now().astimezone()
    start = min(now.replace(hour=8, minute=0, second=0, microsecond=0), now - timedelta(hours=6))
    rng = np.random.default_rng(7)
    for i in range(40):
        at = start + (now - start) * rng.random()
        citizen = [wang, li, None][i % 3]
        status = ["confirmed", "rejected", "closed", "pending"][i % 4] if citizen else "closed"
        add_session(app, db, devices[i % 3], citizen, received_at=at, status=status,
                    time_to_greet=round(0.4 + rng.random(), 2))
    add_session(app, db, devices[0], wang, status="pending", received_at=now - timedelta(minutes=1))
    with transaction(db):
        audit(db, "user", 1, "admin", "settings.update", "setting", "calibration.target_fmr_1to1,policy.margin",
              {"calibration.target_fmr_1to1": [0.0001, 1e-05], "policy.margin": [0.3, 0.25]})
        audit(db, "user", 1, "admin", "user.update", "user", "clerk", {"role": ["admin", "clerk"]})
        audit(db, "user", 2, "clerk", "case.update", "case", "1",
              {"case_number": "TAX-2026-0417", "status": ["open", "waiting_documents"], "counter": ["", "5"]})
        audit(db, "user", 2, "clerk", "session.confirm", "session", "s-1",
              {"note": "Face and ID card match", "template_added": False, "templates_withdrawn": 0})
        audit(db, "system", None, "purge", "snapshots.purge", "session", "",
              {"purged": 12, "failed": 0, "received_before": "2026-11-07T00:00:00Z"})
    return {"citizen": wang, "devices": devices}


PAGES = {"queue": "/console/", "dashboard": "/console/dashboard", "calibration": "/admin/calibration",
         "devices": "/admin/devices", "citizen": "/citizens/{citizen}", "audit": "/admin/audit",
         "settings": "/admin/settings", "imports": "/imports/"}


def signed_in(browser, base, locale, width, **options):
    """A new context signed in as the admin; options go to new_context (bypass_csp=True lets a
    test inject its own script, as the accessibility test does)."""
    context = browser.new_context(viewport={"width": width, "height": 900}, locale=locale, **options)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(base + "/login")
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url("**/console/")
    return page


def show(page, base, name, hall):
    page.goto(base + PAGES[name].format(**hall))
    page.wait_for_load_state("load")
    if name == "dashboard":
        page.wait_for_selector("#hourly-chart svg rect")


@pytest.mark.parametrize("width", WIDTHS)
def test_chinese_pages_have_no_english_and_no_one_character_lines(app, db, live_server, chromium_page,
                                                                 hall, width):
    base = live_server.url
    zh = signed_in(chromium_page.context.browser, base, "zh-CN", width)
    en = signed_in(chromium_page.context.browser, base, "en-US", width)
    problems = {}
    for name in PAGES:
        show(zh, base, name, hall)
        assert zh.evaluate("document.documentElement.lang") == "zh-CN"
        english = [w for w in zh.evaluate(VISIBLE_ENGLISH)
                   if w.split(" ")[0] not in ALLOWED | DATA_WORDS]
        squeezed = zh.evaluate(ONE_CHARACTER_LINES)
        screenshot(zh, f"zh_{name}_{width}")
        show(en, base, name, hall)
        squeezed += en.evaluate(ONE_CHARACTER_LINES)
        screenshot(en, f"en_{name}_{width}")
        if english or squeezed:
            problems[name] = {"english": english, "one character per line": squeezed}
    assert problems == {}
    zh.context.close()
    en.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_charts_ticks_and_legends(app, db, live_server, chromium_page, hall, width):
    base = live_server.url
    page = signed_in(chromium_page.context.browser, base, "zh-CN", width)
    show(page, base, "dashboard", hall)
    ticks = [t.strip() for t in page.locator("#hourly-chart .y-tick").all_text_contents()]  # SVG text
    assert len(ticks) >= 3 and all(re.fullmatch(r"\d+", t) for t in ticks), ticks
    steps = {int(b) - int(a) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1 and steps.pop() in (1, 2, 5, 10, 20, 50), ticks   # even, round steps
    assert re.fullmatch(r"\d+\.\d\d 秒", page.inner_text("#tile-median").strip())

    show(page, base, "calibration", hall)
    card = page.locator("#calibration-summary").evaluate(RECT)
    for figure in page.locator("figure.chart-figure").all():
        plot = figure.locator("rect.plot-area").evaluate(RECT)
        legend = figure.locator(".chart-legend").evaluate(RECT)
        assert not overlap(legend, plot), (legend, plot)
        label = figure.locator(".marker-label")
        if label.count():
            assert label.evaluate(RECT)[3] <= plot[1] + 1     # the threshold's label sits above the plot
        assert figure.locator("svg").evaluate(RECT)[2] - figure.locator("svg").evaluate(RECT)[0] \
            >= 0.9 * (card[2] - card[0]) - 60                  # the chart uses its card's width
        assert len(figure.locator(".y-tick").all()) >= 4 and len(figure.locator(".x-tick").all()) >= 5
        # every series the legend names is drawn in its colour (or the legend says it is empty)
        drawn = figure.evaluate("""f => [...f.querySelectorAll("svg rect:not(.plot-area), svg polyline")]
                                   .map(e => getComputedStyle(e)[e.tagName === "rect" ? "fill" : "stroke"])""")
        for item in figure.locator(".chart-legend li").all():
            swatch = item.locator(".swatch").evaluate(
                "s => { const c = getComputedStyle(s); return c.backgroundColor !== 'rgba(0, 0, 0, 0)'"
                " ? c.backgroundColor : c.borderTopColor; }")
            assert swatch in drawn or item.locator(".muted").count(), item.inner_text()
    notes = page.inner_text("#calibration-summary")
    assert "1 位被标记为可能重复身份的市民未计入" in notes
    page.context.close()


def test_calibration_in_english_says_one_citizen_and_people_numbers(app, db, live_server, chromium_page, hall):
    base = live_server.url
    page = signed_in(chromium_page.context.browser, base, "en-US", 1440)
    show(page, base, "calibration", hall)
    summary = page.inner_text("#calibration-summary")
    assert "1 citizen flagged as a possible duplicate is left out." in summary
    assert "1 citizens" not in summary
    show(page, base, "settings", hall)
    text = page.inner_text("#setting-calibration-target_fmr_1to1")
    assert "0.00001 – 0.01" in text and "e-0" not in text
    page.context.close()


def test_chinese_admin_pages_say_what_they_show(app, db, live_server, chromium_page, hall):
    base = live_server.url
    page = signed_in(chromium_page.context.browser, base, "zh-CN", 1440)
    show(page, base, "devices", hall)
    assert page.locator("#device-kind option").all_inner_texts() == ["自助机", "机器人"]
    assert page.locator("#devices th").first.inner_text().strip() == "设备名称"
    show(page, base, "audit", hall)
    rows = page.inner_text("#audit")
    assert "admin (管理员)" in rows and "clerk (工作人员)" in rows and "(系统)" in rows
    assert "{" not in rows and "[" not in rows                   # no raw JSON
    assert "身份证号码核验：误通过比例上限：0.0001 → 0.00001" in rows       # a setting by its label
    assert "状态：已受理 → 待补材料" in rows
    show(page, base, "imports", hall)
    columns = page.inner_text("#import-columns")
    assert "身份证号" in columns and "姓名" in columns and "id_number" in columns
    page.context.close()
