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


def test_admin_sees_both_photos_of_a_held_duplicate_and_imports_it(live_server, chromium_page, db,
                                                                    app, tmp_path):
    photos = photo_folder(tmp_path / "photos", {"o1.jpg": people_photo("barack_obama", 1),
                                                "o4.jpg": people_photo("barack_obama", 4)})
    records = write_csv(tmp_path / "RECORDS.csv", RECORD_HEADER,
                        [record(1, "Barack Obama", "o1.jpg"), record(2, "Obama Twin", "o4.jpg")])
    run_import(db, str(records), str(photos), None, Settings.from_config(app.config))
    page = chromium_page
    log_in(page, live_server.url, "admin")
    page.goto(live_server.url + "/admin/duplicates/")
    screenshot(page, "records_duplicates")
    page.click("#duplicates a.button")
    page.wait_for_selector("#held-photo")
    page.wait_for_function("document.querySelector('#held-photo').naturalWidth > 0"
                           " && document.querySelector('#existing-photo').naturalWidth > 0")
    screenshot(page, "records_duplicate")
    page.click("#import")
    page.wait_for_selector("#edit-citizen")
    assert page.input_value("#name") == "Obama Twin"
