"""An admin imports records through the web page in real Chromium and reads the report."""
from browser import screenshot
from conftest import PASSWORD
from helpers import (CASE_HEADER, RECORD_HEADER, bad_check_digit, group_photo, id_number,
                     make_zip, people_photo, record, write_csv)


def login(page, url, username="admin"):
    page.goto(url + "/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_load_state()


def test_admin_imports_through_the_page_and_sees_the_report(live_server, chromium_page, tmp_path):
    page = chromium_page
    records = write_csv(tmp_path / "RECORDS.csv", RECORD_HEADER, [
        record(1, "王小明", "obama.jpg", district="越秀区"),
        record(2, "李华", "biden.jpg", language="yue"),
        record(3, "Two People", "group.jpg"),
        {**record(4, "Typo", "kit.jpg"), "id_number": bad_check_digit(id_number(4))},
        record(5, "Nobody", "missing.jpg"),
    ], "gbk")
    photos = make_zip(tmp_path / "photos.zip", {
        "photos/obama.jpg": people_photo("barack_obama", 1), "photos/biden.jpg": people_photo("joe_biden", 2),
        "photos/group.jpg": group_photo("two_people.jpg"), "photos/kit.jpg": people_photo("kit_harington")})
    cases = write_csv(tmp_path / "CASES.csv", CASE_HEADER,
                      [["GS-2025-0001", id_number(1), "个人所得税汇算", "open", "2024 年度汇算清缴，待补充材料",
                        "A3", "2025-03-01 09:30"]])

    login(page, live_server.url)
    page.goto(live_server.url + "/imports/")
    page.set_input_files("#records", str(records))
    page.set_input_files("#photos", str(photos))
    page.set_input_files("#cases", str(cases))
    screenshot(page, "import_upload")
    page.click("#import-form button[type=submit]")
    page.wait_for_url("**/imports/*")
    page.wait_for_selector("#summary", timeout=120_000)  # the page polls, then shows the result

    assert page.inner_text("#n-imported") == "2"
    assert page.inner_text("#n-rejected") == "3"
    problems = page.inner_text("#problems")
    assert "2 faces found; the photo must show exactly one person" in problems
    assert "wrong check digit" in problems
    assert "photo file missing.jpg not found" in problems
    screenshot(page, "import_job")
    page.click("form[action^='/lang/'] button")  # the same page in Chinese
    page.wait_for_selector("#problems")
    assert "被拒绝的行" in page.inner_text("main")
    screenshot(page, "import_job_zh")

    with page.expect_download() as download:
        page.click("#report-link")
    report = download.value.path().read_bytes().decode("utf-8-sig")
    assert report.splitlines()[0] == "file,line,id_number,name,outcome,reason"
    assert "王小明" in report and "GS-2025-0001" in report

    page.goto(live_server.url + "/citizens/")
    assert id_number(1) not in page.inner_text("#citizens")  # masked in the list
    screenshot(page, "citizens_list")
    page.fill("#q", "王小明")
    page.click("#citizen-search button[type=submit]")
    page.click("#citizens a")
    page.wait_for_selector("#citizen-photo")
    assert page.inner_text("#id-number") == id_number(1)
    assert "GS-2025-0001" in page.inner_text("#cases")
    assert page.evaluate("document.getElementById('citizen-photo').naturalWidth") > 0
    screenshot(page, "citizen_detail")


def test_an_upload_that_fills_the_disk_is_a_page_that_says_so(app, live_server, chromium_page,
                                                              tmp_path, monkeypatch):
    """The photos zip runs out of space half way: the admin reads "disk is full" and which
    folder, on the console's own error page; nothing of the upload stays."""
    import errno
    import os
    from werkzeug.datastructures import FileStorage
    real = FileStorage.save

    def full(self, dst, *args, **kwargs):
        if str(dst).endswith(".zip"):
            with open(dst, "wb") as f:
                f.write(b"PK half")
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(self, dst, *args, **kwargs)
    monkeypatch.setattr(FileStorage, "save", full)
    records = write_csv(tmp_path / "RECORDS.csv", RECORD_HEADER, [record(1, "王小明", "obama.jpg")])
    photos = make_zip(tmp_path / "photos.zip", {"obama.jpg": people_photo("barack_obama", 1)})
    page = chromium_page
    login(page, live_server.url)
    page.goto(live_server.url + "/imports/")
    page.set_input_files("#records", str(records))
    page.set_input_files("#photos", str(photos))
    page.click("#import-form button[type=submit]")
    page.wait_for_load_state()
    text = page.inner_text("main")
    assert "disk is full" in text and "uploads" in text
    screenshot(page, "import_disk_full")
    assert os.listdir(app.config["UPLOADS_DIR"]) == []


def test_the_admin_overview_warns_when_the_disk_is_nearly_full(app, live_server, chromium_page):
    app.config["DISK_WARN_MB"] = 10 ** 9
    page = chromium_page
    login(page, live_server.url)
    page.goto(live_server.url + "/admin/")
    assert "MB free on the disk of" in page.inner_text("main")
    screenshot(page, "admin_disk_warning")
