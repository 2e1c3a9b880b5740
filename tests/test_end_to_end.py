"""The whole day, end to end with real parts: an admin bulk-loads records from the command line,
registers a kiosk, the real kiosk agent greets a citizen on video against the real server, and a
clerk in real Chromium finds that session, confirms it, opens the case file and adds a note; the
admin then reads the audit trail of every view."""
import shutil

import pytest

from browser import log_in, screenshot
from conftest import PEOPLE
from helpers import id_number, of_kind, run_agent, write_csv
from videos import visitor_video

pytestmark = pytest.mark.video

OBAMA_ID = id_number(17)


def bulk_load(runner, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(PEOPLE / "barack_obama" / "1.jpg", photos / "obama.jpg")
    shutil.copy(PEOPLE / "joe_biden" / "1.jpg", photos / "biden.jpg")
    records = write_csv(tmp_path / "records.csv", ["id_number", "name", "phone", "photo", "language"], [
        [OBAMA_ID, "Barack Obama", "+86 138-0013-8000", "obama.jpg", "en"],
        [id_number(18), "Joe Biden", "13900139000", "biden.jpg", "en"]])
    cases = write_csv(tmp_path / "cases.csv", ["case_number", "id_number", "type", "status", "summary",
                                               "counter"], [
        ["TAX-2026-0001", OBAMA_ID, "Individual income tax", "ready", "Annual return", "3"]])
    result = runner.invoke(args=["import-records", str(records), "--photos", str(photos),
                                 "--cases", str(cases)])
    assert result.exit_code == 0, result.output
    assert "imported 2, updated 0, unchanged 0, rejected 0" in result.output


def register_kiosk(runner):
    result = runner.invoke(args=["register-device", "kiosk-east", "--kind", "kiosk", "--site", "hall-a"])
    assert result.exit_code == 0, result.output
    return [line for line in result.output.split() if len(line) >= 32][-1]


def test_import_greet_review_and_audit(app, db, runner, live_server, chromium_page, tmp_path):
    bulk_load(runner, tmp_path)
    token = register_kiosk(runner)
    video = visitor_video(tmp_path / "visit.avi", ["barack_obama"], seconds=3.0)
    events, _ = run_agent(live_server.url, token, str(video), tmp_path / "kiosk.db")
    greeted = of_kind(events, "greeted")
    assert [e["name"] for e in greeted] == ["Barack Obama"]
    session_id = greeted[0]["session_id"]
    assert session_id in [e["session_id"] for e in of_kind(events, "session_uploaded")]

    page, base = chromium_page, live_server.url
    log_in(page, base, "clerk")
    row = page.locator(f'tr[data-id="{session_id}"]')
    assert "Barack Obama" in row.inner_text()
    row.get_by_role("link").click()
    page.wait_for_load_state("load")   # the load event waits for every image
    assert page.evaluate("Array.from(document.images).every(i => i.naturalWidth > 0)"), \
        "the kiosk snapshot and the enrolled photo are both shown"
    screenshot(page, "e2e_session_review")
    page.fill("#note", "Matches the enrolled photo")
    page.click("#confirm")
    page.wait_for_selector(".flash-ok")
    page.click("#open-case-file")
    page.wait_for_url("**/cases")
    case = page.locator(".case").first
    assert "TAX-2026-0001" in case.inner_text()
    case.locator("textarea").fill("Return filed at counter 3")
    case.get_by_role("button", name="Add note").click()
    page.wait_for_selector(".flash-ok")
    screenshot(page, "e2e_case_file")
    page.click("text=Sign out")

    log_in(page, base, "admin")
    page.goto(base + "/admin/audit?actor=clerk")
    audit = page.inner_text("#audit")
    # each action by its label, as an admin reads the page (the code is in the filter's menu)
    for action in ("Session viewed", "Match confirmed", "Case file viewed", "Case note added"):
        assert action in audit
    assert db.execute("SELECT review_status FROM sessions WHERE id = ?",
                      [session_id]).fetchone()[0] == "confirmed"
