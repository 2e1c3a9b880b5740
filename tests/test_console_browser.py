"""The clerk's day in real Chromium: queue, live arrival, review, case file, note; the admin's audit.

Sessions are inserted directly (the kiosk end-to-end run is a separate test). Screenshots go to
tests/_artifacts/ for a person to look at.
"""
import random
from datetime import datetime, timedelta

import pytest

from browser import log_in, screenshot
from helpers import add_case, add_citizen, add_device, add_session


@pytest.fixture
def busy_hall(app, db):
    """Three devices and a day of sessions, one of them waiting for review with a real snapshot."""
    kiosk, _ = add_device(db, "kiosk-east", "kiosk", "hall-a")
    robot, _ = add_device(db, "robot-lobby", "robot", "hall-a")
    west, _ = add_device(db, "kiosk-west", "kiosk", "hall-b")
    obama = add_citizen(app, db)
    biden = add_citizen(app, db, "李建国", "110101198001010053", ("joe_biden", 1), "13900139000")
    add_case(db, obama, "TAX-2026-0417", "个人所得税汇算", "open", "2025 年度汇算清缴")
    add_case(db, obama, "TAX-2026-0533", "发票申领", "waiting_documents", "需补充营业执照", "5")
    now = datetime.now().astimezone()
    # the morning so far; before 08:00 (a run just after midnight) the six hours before now:
    # a start after now put the day's sessions in the future, above the one waiting for review
    start = min(now.replace(hour=8, minute=0, second=0, microsecond=0), now - timedelta(hours=6))
    rng = random.Random(7)
    for i in range(60):
        at = start + (now - start) * rng.random()
        device = rng.choice([kiosk, kiosk, robot, west])
        citizen = rng.choice([obama, biden, None])
        status = rng.choice(["confirmed", "confirmed", "rejected", "closed"]) if citizen else "closed"
        add_session(app, db, device, citizen, received_at=at - timedelta(minutes=5), status=status,
                    distance=round(rng.uniform(0.25, 0.44), 3), margin=round(rng.uniform(0.1, 0.4), 3),
                    time_to_greet=round(rng.uniform(0.4, 1.6), 2))
    waiting = add_session(app, db, kiosk, obama, snapshot=("barack_obama", 2), distance=0.318,
                          margin=0.262, time_to_greet=0.71, received_at=now - timedelta(minutes=1))
    return {"kiosk": kiosk, "robot": robot, "waiting": waiting, "obama": obama}


def images_loaded(page):
    return page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")


def test_clerk_reviews_a_session_and_admin_sees_the_audit(app, db, live_server, chromium_page,
                                                         busy_hall):
    page, base = chromium_page, live_server.url
    log_in(page, base, "clerk")
    waiting_row = page.locator(f'tr[data-id="{busy_hall["waiting"]}"]')
    assert "王小明" in waiting_row.inner_text()

    # a session posted while the clerk watches appears without a reload
    arrived = add_session(app, db, busy_hall["robot"], None)
    page.locator(f'tr[data-id="{arrived}"]').wait_for(timeout=15_000)
    assert page.locator("#queue-rows tr").first.get_attribute("data-id") == arrived
    screenshot(page, "console_queue")

    # another clerk's review shows in this queue without a reload
    other = add_session(app, db, busy_hall["kiosk"], busy_hall["obama"],
                        received_at=datetime.now().astimezone() - timedelta(minutes=2))
    page.reload()
    db.execute("UPDATE sessions SET review_status = 'rejected' WHERE id = ?", [other])
    page.locator(f'tr[data-id="{other}"] .badge.status-rejected').wait_for(timeout=15_000)

    waiting_row.get_by_role("link").click()
    page.wait_for_load_state("load")   # the load event waits for every image
    assert images_loaded(page)
    assert "0.318" in page.inner_text("table.facts")
    screenshot(page, "console_session_review")

    page.fill("#note", "Face and ID card match")
    page.click("#confirm")
    page.wait_for_selector(".flash-ok")
    assert page.inner_text("#review-status").strip().lower() in ("confirmed", "已确认")
    screenshot(page, "console_session_confirmed")

    page.click("#open-case-file")
    page.wait_for_url("**/cases")
    case = page.locator(".case").first
    case.locator("textarea").fill("Brought the 2025 payslips; sent to counter 3")
    case.get_by_role("button", name="Add note").click()
    page.wait_for_selector(".flash-ok")
    assert "Brought the 2025 payslips" in page.locator(".case").first.inner_text()
    screenshot(page, "console_case_file")

    page.goto(base + "/console/dashboard")
    page.wait_for_selector("#hourly-chart svg rect")
    screenshot(page, "console_dashboard")
    page.click(".topbar-right form button")  # switch to Chinese
    page.wait_for_selector("text=各设备每小时接待量")
    screenshot(page, "console_dashboard_zh")
    page.goto(base + "/console/")
    screenshot(page, "console_queue_zh")
    page.click(".topbar-right form button")  # back to English
    page.click("text=Sign out")

    log_in(page, base, "admin")
    page.goto(base + "/admin/audit?actor=clerk")
    audit = page.inner_text("#audit")
    # actions by their names (each links to the log filtered by it), not their codes
    for action in ("Match confirmed", "Case note added", "Case file viewed", "Snapshot viewed"):
        assert action in audit
    assert "session.confirm" not in audit and "clerk (Clerk)" in audit
    screenshot(page, "admin_audit")


def test_admin_pages(app, db, live_server, chromium_page, busy_hall):
    page, base = chromium_page, live_server.url
    log_in(page, base, "admin")
    page.goto(base + "/admin/")
    screenshot(page, "admin_index")
    page.goto(base + "/admin/devices")
    page.fill("#device-name", "robot-2f")
    page.select_option("#device-kind", "robot")
    page.fill("#device-site", "hall-b")
    page.click("#register-device button[type=submit]")
    token = page.inner_text("#token-value").strip()
    assert len(token) >= 32
    screenshot(page, "admin_devices_token")
    page.goto(base + "/admin/devices")
    assert token not in page.content()
    page.goto(base + "/admin/users")
    screenshot(page, "admin_users")
    page.goto(base + "/admin/settings")
    page.fill("[name='policy.threshold']", "1.5")
    page.click("#settings-form button[type=submit]")
    page.wait_for_selector(".setting .flash-error")
    screenshot(page, "admin_settings_error")


def test_two_clerks_on_one_case_the_later_save_is_refused_not_applied(app, db, live_server,
                                                                     chromium_page, busy_hall):
    """Clerk A sends the citizen to counter 3 while clerk B has the same case file open; B's
    save would have put the old counter back without a word."""
    base, a = live_server.url, chromium_page
    b = a.context.browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
    log_in(a, base, "clerk")
    log_in(b, base, "admin")
    for page in (a, b):
        page.goto(f"{base}/console/citizens/{busy_hall['obama']}/cases")
    first = lambda page: page.locator(".case").first
    first(a).locator("select[name=status]").select_option("ready")
    first(a).locator("input[name=counter]").fill("3")
    first(a).get_by_role("button", name="Save").click()
    a.wait_for_selector(".flash-ok")
    first(b).locator("select[name=status]").select_option("in_progress")
    first(b).get_by_role("button", name="Save").click()
    b.wait_for_selector(".flash-error")
    assert "Another clerk changed this case" in b.inner_text(".flash-error")
    assert first(b).locator(".counter").inner_text() == "3"    # the page now shows A's change
    screenshot(b, "console_case_changed_meanwhile")
    status = db.execute("SELECT status, counter FROM cases WHERE case_number = 'TAX-2026-0417'").fetchone()
    assert tuple(status) == ("ready", "3")
    b.context.close()
