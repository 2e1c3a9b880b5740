"""An admin manages one citizen and decides a held duplicate in real Chromium."""
from browser import log_in, screenshot
from conftest import PEOPLE
from helpers import RECORD_HEADER, id_number, people_photo, photo_folder, record, write_csv
from server.importer import Settings, run_import


def test_admin_adds_a_citizen_with_photos_edits_and_withdraws_consent(live_server, chromium_page, db):
    page = chromium_page
    log_in(page, live_server.url, "admin")
    page.goto(live_server.url + "/admin/citizens/new")
    page.fill("#id_number", id_number(11))
    page.fill("#name", "Kit Harington")
    page.fill("#phone", "139 0000 1111")
    page.select_option("#language", "en")
    page.set_input_files("#photos", [str(PEOPLE / "kit_harington" / "1.jpg"),
                                     str(PEOPLE / "kit_harington" / "2.jpg")])
    screenshot(page, "records_new")
    page.click("#add-citizen")
    page.wait_for_selector("#edit-citizen")
    assert page.locator("#photos img").count() == 2
    page.fill("#district", "天河区")
    page.click("#save-citizen")
    page.wait_for_selector(".flash-ok")
    assert page.input_value("#district") == "天河区"
    screenshot(page, "records_manage")

    page.check("#withdraw-form input[name=confirm]")
    page.click("#withdraw")
    page.wait_for_selector("#no-templates")
    assert "Consent withdrawn" in page.inner_text(".flash-ok") or "已撤回同意" in page.inner_text(".flash-ok")
    screenshot(page, "records_withdrawn")
    row = db.execute("SELECT consent, photo_path FROM citizens WHERE id_number = ?",
                     [id_number(11)]).fetchone()
    assert tuple(row) == (0, None)


PHOTOS_SHOWN = ("document.querySelector('#held-photo').naturalWidth > 0"
                " && document.querySelector('#existing-photo').naturalWidth > 0")


def test_admin_compares_a_held_duplicate_side_by_side_and_imports_it_only_when_sure(
        live_server, chromium_page, db, app, tmp_path):
    photos = photo_folder(tmp_path / "photos", {"o1.jpg": people_photo("barack_obama", 1),
                                                "o4.jpg": people_photo("barack_obama", 4)})
    records = write_csv(tmp_path / "RECORDS.csv", RECORD_HEADER,
                        [record(1, "Barack Obama", "o1.jpg", district="天河区"),
                         record(2, "Obama Twin", "o4.jpg", district="越秀区")])
    run_import(db, str(records), str(photos), None, Settings.from_config(app.config))
    page = chromium_page
    log_in(page, live_server.url, "admin")
    page.goto(live_server.url + "/admin/duplicates/")
    page.click("#duplicates a.button")
    page.wait_for_selector("#held-photo")
    url = page.url
    for language in ("zh", "en"):
        page.set_extra_http_headers({"Accept-Language": language})
        for width in (1440, 800):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(url)
            page.wait_for_function(PHOTOS_SHOWN)
            screenshot(page, f"duplicate_review_{width}_{language}")
            held, existing = (page.locator(f"#{side}-photo").bounding_box() for side in ("held", "existing"))
            assert abs(held["y"] - existing["y"]) < 2 and held["x"] + held["width"] < existing["x"]  # side by side
            assert held["height"] >= (400 if width == 1440 else 340)
            assert "primary" in page.get_attribute("#discard", "class")     # the likely answer
            assert "primary" not in page.get_attribute("#import", "class")

    page.click("#import")                                   # not ticked: the browser holds it
    page.wait_for_timeout(500)
    assert page.evaluate("document.querySelector('#confirm-different').validity.valueMissing")
    assert page.url == url and db.execute("SELECT status FROM duplicate_reviews").fetchone()[0] == "pending"
    page.check("#confirm-different")
    page.click("#import")
    page.wait_for_selector("#edit-citizen")
    assert page.input_value("#name") == "Obama Twin"
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(live_server.url + "/admin/duplicates/")
    assert page.locator("#decided tr[data-decision=import]").count() == 1
    screenshot(page, "duplicates_decided_1440_en")
