"""Bulk import: real photos through the real quality gate and encoder, into a real SQLite file."""
import io
import json
import socket
from pathlib import Path

import numpy as np

import helpers
import pytest

from helpers import (CASE_HEADER, RECORD_HEADER, bad_check_digit, edge_photo, enrol, group_photo,
                     huge_png_header, id_number, make_zip, people_photo, photo_folder,
                     record, text_as_jpg, truncated_jpeg, write_csv)
from server import importer
from server.importer import ImportFailed, Settings, run_import


@pytest.fixture
def settings(app):
    return Settings.from_config(app.config)


def run(db, tmp_path, settings, rows, photos, cases=None, encoding="utf-8", **kwargs):
    """Write RECORDS.csv (+ CASES.csv) and a photo folder (dict) or zip (path), then import."""
    records = write_csv(tmp_path / "RECORDS.csv", RECORD_HEADER, rows, encoding)
    if isinstance(photos, dict):
        photos = photo_folder(tmp_path / "photos", photos)
    cases_path = write_csv(tmp_path / "CASES.csv", CASE_HEADER, cases) if cases is not None else None
    return run_import(db, str(records), str(photos), cases_path and str(cases_path), settings, **kwargs)


def outcome(result, line):
    row = next(r for r in result.rows if r.file == "records" and r.line == line)
    return row.outcome, row.reason


def citizen(db, n):
    return db.execute("SELECT * FROM citizens WHERE id_number = ?", [id_number(n)]).fetchone()


def templates_of(db, n):
    return db.execute("SELECT t.* FROM face_templates t JOIN citizens c ON c.id = t.citizen_id"
                      " WHERE c.id_number = ? ORDER BY t.id", [id_number(n)]).fetchall()


def sync_counter(db):
    return db.execute("SELECT seq FROM sync_counter").fetchone()[0]


# --- photos ---------------------------------------------------------------------------------

def test_people_photos_enrol_with_template_photo_and_sync_seq(db, tmp_path, settings):
    photos = {"obama.jpg": people_photo("barack_obama"), "biden.jpg": people_photo("joe_biden")}
    rows = [record(1, "Barack Obama", "obama.jpg"), record(2, "Joe Biden", "biden.jpg")]
    result = run(db, tmp_path, settings, rows, photos)
    assert result.summary_line() == "imported 2, updated 0, unchanged 0, rejected 0"
    obama, biden = citizen(db, 1), citizen(db, 2)
    assert obama["phone"] == "13800130001"
    assert obama["photo_path"] == obama["photo_sha256"] + ".jpg"
    assert (tmp_path / "instance" / "photos" / obama["photo_path"]).read_bytes() == photos["obama.jpg"]
    assert obama["sync_seq"] > 0 and biden["sync_seq"] > obama["sync_seq"]
    a, b = (helpers.MODEL.from_blob(templates_of(db, n)[0]["encoding"]) for n in (1, 2))
    assert helpers.MODEL.distance(a, b) > helpers.MODEL.bounds.duplicate_ceiling  # two people


def test_large_photos_are_written_in_smaller_batches(db, tmp_path, settings, monkeypatch):
    """A batch holds its photos until it is written: it is cut by their bytes, not only by
    its row count, and every row still arrives."""
    written = []
    original = importer._Run._encode
    monkeypatch.setattr(importer._Run, "_encode",
                        lambda self, pending, encoder: (written.append(len(pending)),
                                                        original(self, pending, encoder)))
    monkeypatch.setattr(importer, "BATCH_BYTES", len(people_photo("barack_obama")) + 1)
    photos = {"obama.jpg": people_photo("barack_obama"), "biden.jpg": people_photo("joe_biden"),
              "obama2.jpg": people_photo("barack_obama", 2)}
    rows = [record(1, "Barack Obama", "obama.jpg"), record(2, "Joe Biden", "biden.jpg"),
            record(3, "No Photo", "", consent="no"), record(4, "Obama Again", "obama2.jpg")]
    result = run(db, tmp_path, settings, rows, photos)
    assert written == [2, 2]                       # two photos pass the bytes; the third waits
    assert result.summary_line().startswith("imported 3")   # the second Obama is held as a duplicate
    assert [r.outcome for r in result.rows] == ["imported", "imported", "imported", "flagged"]


@pytest.mark.parametrize("name, faces", [("two_people.jpg", 2), ("kit_with_rose.jpg", 2),
                                         ("obama_and_biden.jpg", 3)])
def test_group_photo_is_rejected_for_more_than_one_face(db, tmp_path, settings, name, faces):
    result = run(db, tmp_path, settings, [record(1, "Group", name)], {name: group_photo(name)})
    assert outcome(result, 2) == ("rejected", f"{faces} faces found; the photo must show exactly one person")
    assert citizen(db, 1) is None


def test_32bit_rgba_png_enrols(db, tmp_path, settings):
    result = run(db, tmp_path, settings, [record(1, "RGBA", "face.png")],
                 {"face.png": edge_photo("32bit_rgba.png")})
    assert outcome(result, 2) == ("imported", "")
    assert len(templates_of(db, 1)) == 1 and citizen(db, 1)["photo_path"].endswith(".png")


@pytest.mark.parametrize("kind, stored", [("TIFF", "JPEG"), ("JPEG2000", "JPEG"), ("GIF", "GIF"),
                                         ("BMP", "BMP")])
def test_a_photo_is_kept_in_a_form_the_console_can_show(app, db, tmp_path, settings, kind, stored):
    # a scanner's TIFF enrolled but showed as a broken image on every page (sent as image/jpeg)
    from PIL import Image
    scan = io.BytesIO()
    Image.open(io.BytesIO(people_photo("kit_harington"))).convert("RGB").save(scan, kind)
    result = run(db, tmp_path, settings, [record(1, "Kit", "scan.img")], {"scan.img": scan.getvalue()})
    assert outcome(result, 2) == ("imported", "")
    with Image.open(Path(settings.photos_dir) / citizen(db, 1)["photo_path"]) as kept:
        assert kept.format == stored


@pytest.mark.parametrize("data, reason", [
    (truncated_jpeg(), "image file is truncated or corrupt"),
    (text_as_jpg(), "not an image file (JPEG, PNG, WebP, BMP, GIF, TIFF, AVIF or JPEG 2000 is expected)"),
    (huge_png_header(12000, 12000), "image is too large (12000x12000 pixels; at most 40 megapixels)"),
    (huge_png_header(8000, 6000), "image is too large (8000x6000 pixels; at most 40 megapixels)"),
    (b"", "file is empty"),
    (edge_photo("damaged.tif"), "image file is truncated or corrupt"),   # its decoder crashes
], ids=["truncated-jpeg", "text-named-jpg", "decompression-bomb", "oversized", "empty", "damaged-tiff"])
def test_bad_photo_gets_its_own_reason_and_good_rows_still_import(db, tmp_path, settings, data, reason):
    photos = {"bad.jpg": data, "kit.jpg": people_photo("kit_harington")}
    result = run(db, tmp_path, settings, [record(1, "Bad", "bad.jpg"), record(2, "Kit", "kit.jpg")],
                 photos)
    assert outcome(result, 2) == ("rejected", reason)
    assert outcome(result, 3) == ("imported", "")
    assert citizen(db, 1) is None


def test_two_imports_of_one_file_at_once_flag_nobody_as_their_own_duplicate(app, db, tmp_path):
    from db import open_db
    photos = photo_folder(tmp_path / "p", {"rose.jpg": people_photo("rose_leslie"),
                                           "kit.jpg": people_photo("kit_harington")})
    records = write_csv(tmp_path / "RECORDS.csv", RECORD_HEADER,
                        [record(1, "Rose", "rose.jpg"), record(2, "Kit", "kit.jpg")])
    other, first = open_db(app.config["DATABASE"]), []

    def progress(processed, _total):
        if processed == 2 and not first:     # both photos encoded, nothing written yet
            first.append(run_import(other, str(records), str(photos), None,
                                    Settings(app.config["PHOTOS_DIR"], index_dir=str(tmp_path / "i2"))))
    try:
        second = run_import(db, str(records), str(photos), None,
                            Settings(app.config["PHOTOS_DIR"], index_dir=str(tmp_path / "i1")),
                            progress=progress)
    finally:
        other.close()
    assert [r.outcome for r in first[0].rows] == ["imported", "imported"]
    assert [r.outcome for r in second.rows] == ["unchanged", "unchanged"]
    assert db.execute("SELECT count(*) FROM duplicate_reviews").fetchone()[0] == 0


@pytest.mark.parametrize("packed", ["folder", "zip"])
def test_photo_names_are_found_as_people_spell_them(db, tmp_path, settings, packed):
    import unicodedata
    nfd = unicodedata.normalize("NFD", "José 김민준.jpg")      # as a Mac stores the name
    files = {nfd: people_photo("kit_harington"), "rose.jpg": people_photo("rose_leslie"),
             "sub dir/biden.jpg": people_photo("joe_biden")}
    if packed == "folder":
        (tmp_path / "p" / "sub dir").mkdir(parents=True)
        photos = photo_folder(tmp_path / "p", files)
    else:
        photos = make_zip(tmp_path / "p.zip", files)
    rows = [record(1, "Kit", "José 김민준.jpg"), record(2, "Rose", "Rose.JPG"),      # NFC; case
            record(3, "Biden", "sub dir\\biden.jpg")]                                # Windows path
    result = run(db, tmp_path, settings, rows, photos)
    assert [outcome(result, line) for line in (2, 3, 4)] == [("imported", "")] * 3


def test_a_row_never_takes_a_photo_from_another_folder_of_the_zip(db, tmp_path, settings):
    photos = make_zip(tmp_path / "p.zip", {"export/branchA/001.JPG": people_photo("kit_harington"),
                                           "export/branchB/001.jpg": people_photo("rose_leslie")})
    rows = [record(1, "Kit", "branchA/001.jpg"), record(2, "Rose", "export/branchB/001.jpg"),
            record(3, "Nobody", "branchC/001.jpg"), record(4, "Either", "001.jpg")]
    result = run(db, tmp_path, settings, rows, photos)
    assert outcome(result, 2) == ("imported", "") and outcome(result, 3) == ("imported", "")
    assert outcome(result, 4) == ("rejected", "photo file branchC/001.jpg not found")  # not branchB's
    assert outcome(result, 5)[1].startswith("photo 001.jpg is ambiguous")


def test_a_row_another_import_changed_meanwhile_is_not_stored_half_decided(app, db, tmp_path):
    from db import open_db
    settings = Settings(app.config["PHOTOS_DIR"], index_dir=str(tmp_path / "i1"))
    photos = photo_folder(tmp_path / "p", {"kit.jpg": people_photo("kit_harington", 1),
                                           "kit2.jpg": people_photo("kit_harington", 2)})
    first = write_csv(tmp_path / "first.csv", RECORD_HEADER, [record(1, "Kit", "kit.jpg")])
    second = write_csv(tmp_path / "second.csv", RECORD_HEADER, [record(1, "Kit", "kit2.jpg")])
    run_import(db, str(first), str(photos), None, settings)
    other, changed = open_db(app.config["DATABASE"]), []

    def progress(processed, _total):
        if processed and not changed:        # decided "same photo, nothing to encode"; then:
            changed.append(run_import(other, str(second), str(photos), None,
                                      Settings(app.config["PHOTOS_DIR"], index_dir=str(tmp_path / "i2"))))
    try:
        again = run_import(db, str(first), str(photos), None, settings, progress=progress)
    finally:
        other.close()
    assert [r.outcome for r in changed[0].rows] == ["updated"]
    assert outcome(again, 2) == ("rejected", "changed by another import while this one ran;"
                                             " import this file again")
    assert run_import(db, str(first), str(photos), None, settings).rows[0].outcome == "updated"


def test_missing_photo_file_is_named(db, tmp_path, settings):
    result = run(db, tmp_path, settings, [record(1, "Nobody", "nobody.jpg")], {})
    assert outcome(result, 2) == ("rejected", "photo file nobody.jpg not found")


def test_zip_entries_with_dotdot_or_absolute_paths_are_refused_and_never_extracted(
        db, tmp_path, settings):
    zip_path = make_zip(tmp_path / "photos.zip", {
        "../evil.jpg": people_photo("rose_leslie"), "/abs/rose.jpg": people_photo("rose_leslie", 2),
        "folder/kit.jpg": people_photo("kit_harington")})
    rows = [record(1, "Evil", "evil.jpg"), record(2, "Evil2", "../evil.jpg"),
            record(3, "Abs", "rose.jpg"), record(4, "Kit", "kit.jpg")]
    result = run(db, tmp_path, settings, rows, zip_path)
    assert outcome(result, 2) == ("rejected", "zip entry '../evil.jpg' refused: absolute paths and"
                                              " '..' are not allowed")
    assert outcome(result, 3) == ("rejected", "photo name '../evil.jpg' refused: absolute paths and"
                                              " '..' are not allowed")
    assert outcome(result, 4)[1].startswith("zip entry '/abs/rose.jpg' refused")
    assert outcome(result, 5) == ("imported", "")  # found inside the zip's folder by file name
    assert not (tmp_path / "evil.jpg").exists() and not (tmp_path.parent / "evil.jpg").exists()


def zip_with_raw_names(path, members):
    """A zip whose entry names are the given bytes, without the UTF-8 flag (as Chinese Windows
    writes GBK names): written under same-length ASCII stand-ins, then patched in place."""
    stand_ins = {f"{i:0{len(raw)}d}".encode(): raw for i, raw in enumerate(members, 1)}
    make_zip(path, {key.decode(): data for key, data in zip(stand_ins, members.values())})
    content = path.read_bytes()
    for stand_in, raw in stand_ins.items():
        assert content.count(stand_in) == 2  # the local header and the central directory
        content = content.replace(stand_in, raw)
    path.write_bytes(content)
    return path


def test_zip_entry_names_without_the_utf8_flag_are_found_in_gbk_utf8_or_cp437(db, tmp_path, settings):
    zip_path = zip_with_raw_names(tmp_path / "photos.zip", {
        "照片/张三.jpg".encode("gbk"): people_photo("kit_harington"),    # Chinese Windows
        "李四.jpg".encode("gbk"): people_photo("rose_leslie"),
        b"caf\x82.jpg": people_photo("joe_biden"),             # not GBK: cp437's café.jpg
        "王五.jpg".encode("utf-8"): people_photo("alex_lacamoire"),    # a Mac: UTF-8, no flag
        b"M\x81ller.jpg": group_photo("obama_and_biden.jpg"),  # cp437's Müller, also valid GBK
        "../照片.jpg".encode("gbk"): people_photo("barack_obama")})
    rows = [record(1, "张三", "照片/张三.jpg"), record(2, "李四", "李四.jpg"),
            record(3, "Café", "café.jpg"), record(4, "Escape", "照片.jpg"),
            record(5, "王五", "王五.jpg"), record(6, "Müller", "Müller.jpg")]
    result = run(db, tmp_path, settings, rows, zip_path)
    assert [outcome(result, line)[0] for line in (2, 3, 4, 6)] == ["imported"] * 4
    assert outcome(result, 5) == ("rejected", "zip entry '../照片.jpg' refused: absolute paths and"
                                              " '..' are not allowed")
    assert "faces found" in outcome(result, 7)[1]      # found (and refused: a group photo)
    assert not (tmp_path / "照片.jpg").exists()


def test_photo_name_cannot_escape_the_photo_folder(db, tmp_path, settings):
    (tmp_path / "secret.jpg").write_bytes(people_photo("rose_leslie"))
    result = run(db, tmp_path, settings, [record(1, "Escape", "../secret.jpg")], {})
    assert outcome(result, 2) == ("rejected", "photo name '../secret.jpg' refused: absolute paths"
                                              " and '..' are not allowed")


def test_two_worker_processes_give_the_same_templates_as_one(app, db, tmp_path, settings):
    photos = {"kit.jpg": people_photo("kit_harington", 2), "two.jpg": group_photo("kit_with_rose.jpg"),
              "rose.jpg": people_photo("rose_leslie", 2)}
    rows = [record(1, "Kit", "kit.jpg"), record(2, "Two", "two.jpg"), record(3, "Rose", "rose.jpg")]
    run(db, tmp_path, Settings(app.config["PHOTOS_DIR"], workers=2), rows, photos)
    in_pool = [t["encoding"] for t in db.execute("SELECT encoding FROM face_templates ORDER BY citizen_id")]
    db.execute("DELETE FROM citizens")
    result = run(db, tmp_path, settings, rows, photos)
    assert [r.outcome for r in result.rows] == ["imported", "rejected", "imported"]
    assert [t["encoding"] for t in db.execute("SELECT encoding FROM face_templates ORDER BY citizen_id")] \
        == in_pool


# --- duplicate identities -------------------------------------------------------------------

def test_same_person_under_two_id_numbers_in_one_file_is_flagged(db, tmp_path, settings):
    photos = {"o1.jpg": people_photo("barack_obama", 1), "o2.jpg": people_photo("barack_obama", 2)}
    result = run(db, tmp_path, settings, [record(1, "Obama", "o1.jpg"), record(2, "Not Obama", "o2.jpg")],
                 photos)
    status, reason = outcome(result, 3)
    assert status == "flagged"
    assert reason.startswith(f"possible duplicate identity: face matches ID number {id_number(1)}")
    assert citizen(db, 2) is None
    assert result.summary_line() == "imported 1, updated 0, unchanged 0, rejected 1"
    entry = db.execute("SELECT * FROM audit_log WHERE action = 'import.flagged'").fetchone()
    assert entry["target_id"] == id_number(2) and id_number(1) in entry["detail"]


def test_face_already_enrolled_under_another_id_number_is_flagged_on_a_later_import(
        db, tmp_path, settings):
    run(db, tmp_path, settings, [record(1, "Biden", "b.jpg")], {"b.jpg": people_photo("joe_biden", 1)})
    later = tmp_path / "later"
    later.mkdir()
    result = run(db, later, settings, [record(1, "Biden", "b.jpg"), record(7, "Someone", "b2.jpg")],
                 {"b.jpg": people_photo("joe_biden", 1), "b2.jpg": people_photo("joe_biden", 2)})
    assert outcome(result, 2) == ("unchanged", "")
    status, reason = outcome(result, 3)
    assert status == "flagged" and id_number(1) in reason


def test_reimporting_held_records_keeps_one_pending_review_each(db, tmp_path, settings):
    """The same files again change nothing, even when a closer registered face now matches."""
    photos = {f"o{i}.jpg": people_photo("barack_obama", i) for i in (1, 2, 3)}
    rows = [record(i, f"Obama {i}", f"o{i}.jpg") for i in (1, 2, 3)]

    def pending():
        return [tuple(r) for r in db.execute("SELECT id_number, match_citizen_id FROM"
                                             " duplicate_reviews WHERE status = 'pending' ORDER BY id")]
    run(db, tmp_path, settings, rows, photos)
    first = pending()
    assert [number for number, _ in first] == [id_number(2), id_number(3)]
    again = run(db, tmp_path, settings, rows, photos)
    assert again.counts("records")["flagged"] == 2 and pending() == first

    twin = enrol(db, "barack_obama", photos=(2,))  # a closer face registered since
    run(db, tmp_path, settings, rows, photos)
    assert len(pending()) == 2 and pending()[0] == (id_number(2), twin)  # brought up to date


# --- CSV files ------------------------------------------------------------------------------

def test_gbk_csv_with_chinese_names_is_read(db, tmp_path, settings):
    rows = [record(1, "张三", "", consent="no", district="天河区"),
            record(2, "欧阳娜娜", "", consent="否", language="yue")]
    result = run(db, tmp_path, settings, rows, {}, encoding="gbk")
    assert [r.outcome for r in result.rows] == ["imported", "imported"]
    assert citizen(db, 1)["name"] == "张三" and citizen(db, 1)["district"] == "天河区"
    assert citizen(db, 2)["name"] == "欧阳娜娜" and citizen(db, 2)["language"] == "yue"


def test_gbk_csv_whose_names_are_also_valid_utf8_bytes_is_read(db, tmp_path, settings):
    """郑伟 in GBK happens to be valid UTF-8 (two two-byte sequences): still a GBK file."""
    rows = [record(1, "郑伟", "", consent="no", district="天河区"), record(2, "欧阳娜娜", "", consent="no")]
    result = run(db, tmp_path, settings, rows, {}, encoding="gbk")
    assert [r.outcome for r in result.rows] == ["imported", "imported"]
    assert citizen(db, 1)["name"] == "郑伟" and citizen(db, 2)["name"] == "欧阳娜娜"


def test_utf8_file_with_a_gbk_row_is_refused_whole_and_changes_nothing(db, tmp_path, settings):
    """Read whole as GB18030, the UTF-8 names became mojibake and overwrote good ones."""
    rows = [record(1, "张三", "", consent="no"), record(2, "李四", "", consent="no")]
    run(db, tmp_path, settings, rows, {})
    before = db.execute("SELECT * FROM citizens ORDER BY id").fetchall()
    path = tmp_path / "MIXED.csv"
    utf8 = write_csv(tmp_path / "u.csv", RECORD_HEADER, rows).read_bytes()
    gbk_row = write_csv(tmp_path / "g.csv", RECORD_HEADER, [record(3, "王五", "", consent="no")],
                        "gbk").read_bytes().split(b"\r\n", 1)[1]
    path.write_bytes(utf8 + gbk_row)
    with pytest.raises(ImportFailed, match=r"records: mixes text encodings \(line 2 is UTF-8,"
                                           r" line 4 is not\); save the whole file as UTF-8"):
        run_import(db, str(path), str(photo_folder(tmp_path / "p", {})), None, settings)
    assert [tuple(r) for r in db.execute("SELECT * FROM citizens ORDER BY id")] == [tuple(r) for r in before]


def test_bom_csv_with_odd_header_case_is_read(db, tmp_path, settings):
    path = tmp_path / "RECORDS.csv"
    path.write_bytes(f" ID_Number ,Name,PHONE,Photo,Consent\r\n{id_number(1)},李四,,,no\r\n"
                     .encode("utf-8-sig"))
    result = run_import(db, str(path), str(photo_folder(tmp_path / "p", {})), None, settings)
    assert [(r.outcome, r.id_number) for r in result.rows] == [("imported", id_number(1))]
    assert citizen(db, 1)["name"] == "李四"


def test_a_chinese_export_with_chinese_headers_is_read(db, tmp_path, settings):
    """A bureau's own WPS/Excel export (GBK, 身份证号 / 姓名 / 手机号 / 照片 ...) was refused
    as "missing column(s) id_number, name, phone, photo"."""
    header = ["序号", "身份证号码", "姓名", "手机号", "照片", "所属区县", "是否同意"]
    rows = [["1", id_number(1), "张三", "13800138000", "", "天河区", "否"]]
    records = write_csv(tmp_path / "市民名单.csv", header, rows, "gbk")
    result = run_import(db, str(records), str(photo_folder(tmp_path / "p", {})), None, settings)
    assert [(r.outcome, r.id_number) for r in result.rows] == [("imported", id_number(1))]
    stored = citizen(db, 1)
    assert (stored["name"], stored["phone"], stored["district"]) == ("张三", "13800138000", "天河区")
    cases = write_csv(tmp_path / "案件.csv", ["案件编号", "身份证号", "业务类型", "状态", "摘要", "窗口号"],
                      [["C-1", id_number(1), "个税", "待处理", "汇算清缴", "3"]])
    run_import(db, str(records), str(photo_folder(tmp_path / "p", {})), str(cases), settings)
    case = db.execute("SELECT type, summary, counter FROM cases WHERE case_number = 'C-1'").fetchone()
    assert tuple(case) == ("个税", "汇算清缴", "3")


def test_two_headers_for_one_field_refuse_the_file_and_change_nothing(db, tmp_path, settings):
    """联系电话 (often a landline) before 手机号码: taking the first stored 020-... as the number
    the kiosk's second factor checks, and a re-import overwrote the mobile numbers with it."""
    header = ["身份证号", "姓名", "联系电话", "手机号码", "照片", "是否同意"]
    records = write_csv(tmp_path / "r.csv", header,
                        [[id_number(1), "张三", "020-83331234", "13800138000", "", "否"]], "gbk")
    with pytest.raises(ImportFailed, match="records: columns 联系电话, 手机号码 all name phone;"
                                           " keep one of them"):
        run_import(db, str(records), str(photo_folder(tmp_path / "p", {})), None, settings)
    assert db.execute("SELECT count(*) FROM citizens").fetchone()[0] == 0


@pytest.mark.parametrize("magic, kind", [(b"PK\x03\x04", "xlsx"),
                                         (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "xls")])
def test_an_excel_workbook_is_refused_with_what_to_do(db, tmp_path, settings, magic, kind):
    path = tmp_path / f"records.{kind}"
    path.write_bytes(magic + bytes(range(256)) * 8)
    with pytest.raises(ImportFailed, match=r'records: is an Excel or WPS workbook, not a CSV file;'
                                           r' save it as "CSV UTF-8"'):
        run_import(db, str(path), str(photo_folder(tmp_path / "p", {})), None, settings)


def test_bad_check_digit_and_other_bad_fields_are_rejected_with_their_line(db, tmp_path, settings):
    rows = [record(1, "Good", "", consent="no"),
            {"id_number": bad_check_digit(id_number(2)), "name": "Typo", "consent": "no"},
            record(3, "", "", consent="no"),
            record(4, "Lang", "", consent="no", language="fr"),
            record(5, "Phone", "", consent="no", phone="call me"),
            record(6, "Consent", "", consent="maybe"),
            record(1, "Again", "", consent="no")]
    result = run(db, tmp_path, settings, rows, {})
    assert outcome(result, 2) == ("imported", "stored without a face template (consent is no)")
    assert "has a wrong check digit" in outcome(result, 3)[1]
    assert outcome(result, 4) == ("rejected", "name is empty")
    assert outcome(result, 5)[1].startswith("language must be one of zh, yue, en")
    assert outcome(result, 6)[1].startswith("phone 'call me' may contain only digits")
    assert outcome(result, 7) == ("rejected", "consent must be yes or no, not 'maybe'")
    assert outcome(result, 8) == ("rejected", f"ID number {id_number(1)} is also on line 2")


@pytest.mark.parametrize("missing", ["id_number", "photo"])
def test_missing_required_column_fails_the_whole_file_before_writing(db, tmp_path, settings, missing):
    header = [h for h in RECORD_HEADER if h != missing]
    path = write_csv(tmp_path / "RECORDS.csv", header, [record(1, "A", "a.jpg", consent="no")])
    with pytest.raises(ImportFailed, match=f"records: missing column\\(s\\) {missing}"):
        run_import(db, str(path), str(photo_folder(tmp_path / "p", {})), None, settings)
    assert db.execute("SELECT count(*) FROM citizens").fetchone()[0] == 0


def test_undecodable_csv_fails_the_whole_file(db, tmp_path, settings):
    path = tmp_path / "RECORDS.csv"
    path.write_bytes(b"id_number,name,phone,photo\r\n\xff\xfe\xff\xfe,\x81,,\r\n")
    with pytest.raises(ImportFailed, match="text encoding not recognised"):
        run_import(db, str(path), str(photo_folder(tmp_path / "p", {})), None, settings)


def test_id_number_rule_any_accepts_other_documents(app, db, tmp_path):
    app.config["ID_NUMBER_RULE"] = "any"
    rows = [{"id_number": "h1234567", "name": "Visitor", "consent": "no"},
            {"id_number": "bad-number!", "name": "Bad", "consent": "no"}]
    result = run(db, tmp_path, Settings.from_config(app.config), rows, {})
    assert [(r.outcome, r.id_number) for r in result.rows][0] == ("imported", "H1234567")
    assert result.rows[1].reason == "ID number must be 1 to 32 letters and digits"


@pytest.mark.parametrize("raw, stored", [("+86 138-0013-8000", "+8613800138000"),
                                         ("(020) 8888 1234", "02088881234"),
                                         ("852.9123.4567", "85291234567"), ("", ""),
                                         ("13800138000.0", "13800138000"),  # Excel's number export
                                         ("+8613800138000.0", "+8613800138000")])
def test_phones_are_stored_normalised(raw, stored):
    assert importer.normalise_phone(raw) == stored


@pytest.mark.parametrize("raw", ["12345", "1234567890123456", "138-0013-800a", "++8613800138000",
                                 "1.38001E+10"])
def test_implausible_phones_are_refused(raw):
    with pytest.raises(ValueError):
        importer.normalise_phone(raw)


def test_prc_check_digit_accepts_x_in_any_case():
    assert importer.normalise_id_number("11010519491231002x") == "11010519491231002X"
    with pytest.raises(ValueError, match="not an 18-character"):
        importer.normalise_id_number("1101051949123100")
    with pytest.raises(ValueError, match="turned into a number by a spreadsheet"):
        importer.normalise_id_number("4.40106E+17")


# --- re-import ------------------------------------------------------------------------------

def test_reimport_of_the_same_files_changes_nothing_and_encodes_nothing(db, tmp_path, settings):
    photos = {"kit.jpg": people_photo("kit_harington"), "rose.jpg": people_photo("rose_leslie")}
    rows = [record(1, "Kit", "kit.jpg"), record(2, "Rose", "rose.jpg")]
    first = run(db, tmp_path, settings, rows, photos)
    assert first.encoded == 2
    before = (db.execute("SELECT * FROM citizens ORDER BY id").fetchall(),
              db.execute("SELECT * FROM face_templates ORDER BY id").fetchall(), sync_counter(db))
    again = run(db, tmp_path, settings, rows, photos)
    assert again.summary_line() == "imported 0, updated 0, unchanged 2, rejected 0"
    assert again.encoded == 0
    after = (db.execute("SELECT * FROM citizens ORDER BY id").fetchall(),
             db.execute("SELECT * FROM face_templates ORDER BY id").fetchall(), sync_counter(db))
    assert [list(map(tuple, part)) for part in before[:2]] == [list(map(tuple, p)) for p in after[:2]]
    assert before[2] == after[2]


def test_changed_row_updates_and_a_new_photo_replaces_the_template(db, tmp_path, settings):
    photos = {"o1.jpg": people_photo("barack_obama", 1), "o2.jpg": people_photo("barack_obama", 2)}
    run(db, tmp_path, settings, [record(1, "Obama", "o1.jpg")], photos)
    first_template, seq = templates_of(db, 1)[0], citizen(db, 1)["sync_seq"]
    first_photo = citizen(db, 1)["photo_path"]

    renamed = run(db, tmp_path, settings, [record(1, "Barack Obama", "o1.jpg", phone="+86 139 0000 0000")],
                  photos)
    assert outcome(renamed, 2) == ("updated", "") and renamed.encoded == 0
    assert citizen(db, 1)["name"] == "Barack Obama" and citizen(db, 1)["phone"] == "+8613900000000"
    assert tuple(templates_of(db, 1)[0]) == tuple(first_template)
    assert citizen(db, 1)["sync_seq"] > seq

    new_photo = run(db, tmp_path, settings, [record(1, "Barack Obama", "o2.jpg", phone="+86 139 0000 0000")],
                    photos)
    assert outcome(new_photo, 2) == ("updated", "") and new_photo.encoded == 1  # not flagged: same citizen
    [template] = templates_of(db, 1)
    assert template["encoding"] != first_template["encoding"]
    assert citizen(db, 1)["photo_path"] != first_photo
    assert citizen(db, 1)["photo_path"] == citizen(db, 1)["photo_sha256"] + ".jpg"


def test_reimport_restores_a_template_that_was_removed(db, tmp_path, settings):
    photos = {"kit.jpg": people_photo("kit_harington", 3)}
    run(db, tmp_path, settings, [record(1, "Kit", "kit.jpg")], photos)
    db.execute("DELETE FROM face_templates")
    again = run(db, tmp_path, settings, [record(1, "Kit", "kit.jpg")], photos)
    assert outcome(again, 2) == ("updated", "") and again.encoded == 1
    assert len(templates_of(db, 1)) == 1


def test_consent_no_stores_no_template_and_withdrawing_it_removes_the_face(db, tmp_path, settings):
    photos = {"rose.jpg": people_photo("rose_leslie")}
    result = run(db, tmp_path, settings, [record(1, "Rose", "rose.jpg", consent="no")], photos)
    assert outcome(result, 2) == ("imported", "stored without a face template (consent is no)")
    assert result.encoded == 0 and templates_of(db, 1) == [] and citizen(db, 1)["photo_path"] is None

    run(db, tmp_path, settings, [record(1, "Rose", "rose.jpg", consent="yes")], photos)
    assert len(templates_of(db, 1)) == 1
    seq = citizen(db, 1)["sync_seq"]
    withdrawn = run(db, tmp_path, settings, [record(1, "Rose", "rose.jpg", consent="no")], photos)
    assert outcome(withdrawn, 2)[0] == "updated"
    assert templates_of(db, 1) == [] and citizen(db, 1)["consent"] == 0
    assert citizen(db, 1)["sync_seq"] > seq  # devices learn to forget the face
    assert list((tmp_path / "instance" / "photos").iterdir()) == []  # and the server the photo


def test_a_replaced_photo_file_is_deleted_once_nothing_refers_to_it(db, tmp_path, settings):
    photos_dir = tmp_path / "instance" / "photos"
    photos = {"o1.jpg": people_photo("barack_obama", 1), "o2.jpg": people_photo("barack_obama", 2)}
    run(db, tmp_path, settings, [record(1, "Obama", "o1.jpg")], photos)
    run(db, tmp_path, settings, [record(1, "Obama", "o2.jpg")], photos)
    second = citizen(db, 1)["photo_path"]
    assert [p.name for p in photos_dir.iterdir()] == [second]
    # the same photo under another ID number is held for review, and the held record needs it
    run(db, tmp_path, settings, [record(1, "Obama", "o2.jpg"), record(2, "Other", "o2.jpg")], photos)
    run(db, tmp_path, settings, [record(1, "Obama", "o2.jpg", consent="no")], photos)
    assert citizen(db, 1)["photo_path"] is None
    assert [p.name for p in photos_dir.iterdir()] == [second]


# --- cases ----------------------------------------------------------------------------------

def test_cases_are_upserted_by_case_number_and_need_a_known_citizen(db, tmp_path, settings):
    rows = [record(1, "张三", "", consent="no")]
    cases = [["GS-001", id_number(1), "个税汇算", "Open", "2024 年度汇算", "3", "2025-03-01 09:30"],
             ["GS-002", id_number(9), "发票", "open", "", "", ""],
             ["GS-003", id_number(1), "发票", "open", "", "", "next tuesday"]]
    first = run(db, tmp_path, settings, rows, {}, cases=cases)
    by_number = {r.name: (r.outcome, r.reason) for r in first.rows if r.file == "cases"}
    assert by_number["GS-001"] == ("imported", "")
    assert by_number["GS-002"] == ("rejected", f"ID number {id_number(9)} is not among the citizen records")
    assert by_number["GS-003"][1].startswith("appointment_at 'next tuesday' is not a date")
    case = db.execute("SELECT * FROM cases WHERE case_number = 'GS-001'").fetchone()
    assert (case["status"], case["counter"], case["appointment_at"]) == ("open", "3", "2025-03-01T09:30")

    cases[0][3] = "in progress"
    again = run(db, tmp_path, settings, rows, {}, cases=cases[:1])
    assert [(r.file, r.outcome) for r in again.rows] == [("records", "unchanged"), ("cases", "updated")]
    assert db.execute("SELECT status FROM cases").fetchone()[0] == "in_progress"


def case_rows(result):
    return {r.line: (r.outcome, r.reason) for r in result.rows if r.file == "cases"}


def owner_of(db, case_number):
    return db.execute("SELECT c.id_number FROM cases k JOIN citizens c ON c.id = k.citizen_id"
                      " WHERE k.case_number = ?", [case_number]).fetchone()[0]


def test_a_case_number_belongs_to_one_citizen_and_never_moves(db, tmp_path, settings):
    rows = [record(1, "张三", "", consent="no"), record(2, "李四", "", consent="no")]
    cases = [["GS-001", id_number(1), "个税", "open", "", "", ""],
             ["GS-001", id_number(2), "个税", "open", "", "", ""],
             ["GS-002", id_number(2), "发票", "ready", "", "5", ""]]
    first = run(db, tmp_path, settings, rows, {}, cases=cases)
    assert case_rows(first)[2] == ("imported", "")
    assert case_rows(first)[3] == ("rejected", "case number GS-001 is also on line 2;"
                                               " a case number may appear once in a file")
    assert owner_of(db, "GS-001") == id_number(1)
    again = run(db, tmp_path, settings, rows, {}, cases=cases)  # the same files: nothing flips
    assert [o for o, _ in case_rows(again).values()] == ["unchanged", "rejected", "unchanged"]
    assert owner_of(db, "GS-001") == id_number(1)

    later = run(db, tmp_path, settings, rows, {}, cases=[["GS-001", id_number(2), "个税", "closed", "", "", ""]])
    outcome_, reason = case_rows(later)[2]
    assert outcome_ == "rejected" and reason.startswith("case number GS-001 belongs to ID number 4401")
    assert id_number(1) not in reason and id_number(2) not in reason
    assert importer.mask(id_number(1)) in reason and importer.mask(id_number(2)) in reason
    assert owner_of(db, "GS-001") == id_number(1)
    assert db.execute("SELECT status FROM cases WHERE case_number = 'GS-001'").fetchone()[0] == "open"


@pytest.mark.parametrize("status,stored", [
    ("open", "open"), ("In progress", "in_progress"), ("待补材料", "waiting_documents"),
    ("WAITING-DOCUMENTS", "waiting_documents"), ("已办结", "closed"), ("可办理", "ready"),
    ("pending", None), ("approved", None)])
def test_case_status_comes_from_the_vocabulary(db, tmp_path, settings, status, stored):
    result = run(db, tmp_path, settings, [record(1, "张三", "", consent="no")], {},
                 cases=[["GS-001", id_number(1), "个税", status, "", "", ""]])
    outcome_, reason = case_rows(result)[2]
    if stored:
        assert outcome_ == "imported"
        assert db.execute("SELECT status FROM cases").fetchone()[0] == stored
    else:
        assert outcome_ == "rejected"
        assert reason.startswith(f"status {status!r} is not one of open, in_progress,"
                                 " waiting_documents, ready, closed")


@pytest.mark.parametrize("counter,stored", [
    ("11", "11"), ("11号窗口", "11"), ("第11号窗口", "11"), ("１１号", "11"), ("窗口 7", "7"),
    ("Counter 3", "3"), ("a3", "A3"), ("", ""), ("请到前台办理", None), ("11号窗口号窗口x", None)])
def test_counter_is_stored_as_its_code_so_speech_never_doubles_it(db, tmp_path, settings, counter,
                                                                   stored):
    from device.phrases import next_step
    result = run(db, tmp_path, settings, [record(1, "张三", "", consent="no")], {},
                 cases=[["GS-001", id_number(1), "个税", "ready", "", counter, ""]])
    outcome_, reason = case_rows(result)[2]
    if stored is None:
        assert outcome_ == "rejected" and "must be a counter number like 11" in reason
        return
    case = db.execute("SELECT * FROM cases").fetchone()
    assert case["counter"] == stored
    if stored:
        said = next_step([dict(case)], "zh")
        assert f"请到{stored}号窗口。" in said and "号窗口号窗口" not in said


NOT_A_TIME = "is not a date and time like 2025-03-01 09:30"
HAS_ZONE = "has a time zone; write the hall's local time, like 2025-03-01 09:30"


@pytest.mark.parametrize("written, stored", [
    ("2026/12/1 9:30", "2026-12-01T09:30"),          # Excel's Chinese default
    ("2026-12-1 9:30:00", "2026-12-01T09:30"),
    ("2026-12-01T09:30", "2026-12-01T09:30"),
    ("2026-12-01T02:30Z", HAS_ZONE),                 # kept as written, it was read as 02:30 local
    ("2026-12-01 09:30+08:00", HAS_ZONE),
    ("2026/13/1 9:30", NOT_A_TIME), ("2026/12/1 9:3", NOT_A_TIME), ("next tuesday", NOT_A_TIME)])
def test_appointments_are_the_halls_local_time(db, tmp_path, settings, written, stored):
    result = run(db, tmp_path, settings, [record(1, "张三", "", consent="no")], {},
                 cases=[["GS-001", id_number(1), "个税", "open", "", "", written]])
    outcome_, reason = case_rows(result)[2]
    if stored.startswith("20"):
        assert outcome_ == "imported"
        assert db.execute("SELECT appointment_at FROM cases").fetchone()[0] == stored
    else:
        assert (outcome_, reason) == ("rejected", f"appointment_at {written!r} {stored}")


# --- transactions, progress, report ---------------------------------------------------------

def test_a_failure_mid_batch_leaves_only_whole_batches(db, tmp_path, app, monkeypatch):
    settings = Settings(app.config["PHOTOS_DIR"], batch_size=2)
    real_upsert, calls = importer.upsert_citizen, []

    def dies_on_the_third_row(*args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("power cut")
        return real_upsert(*args)
    monkeypatch.setattr(importer, "upsert_citizen", dies_on_the_third_row)
    rows = [record(n, f"Person {n}", "", consent="no") for n in range(1, 5)]
    with pytest.raises(RuntimeError):
        run(db, tmp_path, settings, rows, {})
    assert [r["id_number"] for r in db.execute("SELECT id_number FROM citizens ORDER BY id")] == \
        [id_number(1), id_number(2)]


def test_progress_reaches_the_total(db, tmp_path, settings):
    seen = []
    rows = [record(n, f"P{n}", "", consent="no") for n in range(1, 4)] + [{"id_number": "x", "name": "y"}]
    run(db, tmp_path, settings, rows, {}, cases=[["C1", id_number(1), "t", "open", "", "", ""]],
        progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 5) and seen[-1] == (5, 5) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_report_has_a_row_per_line_with_reason(db, tmp_path, settings):
    rows = [record(1, "张三", "", consent="no"), record(2, "Missing", "gone.jpg")]
    result = run(db, tmp_path, settings, rows, {})
    importer.write_report(tmp_path / "report.csv", result)
    report = importer.read_report(tmp_path / "report.csv")
    assert list(report[0]) == ["file", "line", "id_number", "name", "outcome", "reason"]
    assert [(r["line"], r["name"], r["outcome"]) for r in report] == [("2", "张三", "imported"),
                                                                      ("3", "Missing", "rejected")]
    assert report[1]["reason"] == "photo file gone.jpg not found"
    entry = db.execute("SELECT * FROM audit_log WHERE action = 'import.run'").fetchone()
    assert '"imported": 1' in entry["detail"] and entry["actor_name"] == "cli"


# --- the command ----------------------------------------------------------------------------

def test_cli_prints_the_summary_line_and_writes_the_report(runner, tmp_path, db):
    records = write_csv(tmp_path / "RECORDS.csv", RECORD_HEADER,
                        [record(1, "Kit", "kit.jpg"), record(2, "Gone", "gone.jpg")])
    photos = make_zip(tmp_path / "photos.zip", {"kit.jpg": people_photo("kit_harington", 2)})
    cases = write_csv(tmp_path / "CASES.csv", CASE_HEADER, [["C1", id_number(1), "tax", "open", "", "", ""]])
    report = tmp_path / "REPORT.csv"
    result = runner.invoke(args=["import-records", str(records), "--photos", str(photos),
                                 "--cases", str(cases), "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "imported 1, updated 0, unchanged 0, rejected 1"
    assert "photo file gone.jpg not found" in result.stderr
    assert [r["outcome"] for r in importer.read_report(report)] == ["imported", "rejected", "imported"]
    again = runner.invoke(args=["import-records", str(records), "--photos", str(photos)])
    assert again.stdout.strip().splitlines()[-1] == "imported 0, updated 0, unchanged 1, rejected 1"


@pytest.mark.parametrize("problem, message", [
    ("missing-records", "records: file not found"),
    ("missing-photos", "photos: folder or zip not found"),
    ("missing-column", "records: missing column(s) photo"),
    ("photos-not-zip", "photos: not a readable zip file"),
    ("missing-cases", "cases: file not found"),
])
def test_cli_exits_non_zero_with_one_line_when_it_cannot_run(runner, tmp_path, problem, message):
    records = write_csv(tmp_path / "RECORDS.csv", RECORD_HEADER, [record(1, "A", "", consent="no")])
    photos = photo_folder(tmp_path / "photos", {})
    args = ["import-records", str(records), "--photos", str(photos)]
    if problem == "missing-records":
        args[1] = str(tmp_path / "nope.csv")
    elif problem == "missing-photos":
        args[3] = str(tmp_path / "nope")
    elif problem == "missing-column":
        write_csv(records, ["id_number", "name", "phone"], [])
    elif problem == "photos-not-zip":
        args[3] = str(records)
    elif problem == "missing-cases":
        args += ["--cases", str(tmp_path / "nope.csv")]
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    error_lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(error_lines) == 1 and error_lines[0].startswith("Error: ") and message in error_lines[0]


def test_cli_refuses_a_report_it_cannot_write_before_importing(runner, tmp_path, db):
    """Found out after the import, the rows were committed and the command ended in a traceback."""
    records = write_csv(tmp_path / "RECORDS.csv", RECORD_HEADER, [record(1, "A", "", consent="no")])
    report = tmp_path / ("r" * 300 + ".csv")  # too long a file name, unwritable even for root
    result = runner.invoke(args=["import-records", str(records), "--photos",
                                 str(photo_folder(tmp_path / "photos", {})), "--report", str(report)])
    assert result.exit_code == 1 and result.exception.__class__ is SystemExit
    [line] = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith(f"Error: report: cannot write {report} (")
    assert db.execute("SELECT count(*) FROM citizens").fetchone()[0] == 0


# --- the web page ---------------------------------------------------------------------------

def wait_for_job(client, job_id, timeout=120):
    """The job's progress JSON (as the page polls it) once the job has ended."""
    from server.imports import wait_for_job as join_job
    assert join_job(job_id, timeout), f"import job {job_id} did not finish"
    return client.get(f"/imports/{job_id}/progress").get_json()


def upload(client, auth, records, photos, cases=None):
    token = auth.csrf_token("/imports/")
    data = {"csrf_token": token, "records": (io.BytesIO(records), "RECORDS.csv"),
            "photos": (io.BytesIO(photos), "photos.zip")}
    if cases is not None:
        data["cases"] = (io.BytesIO(cases), "CASES.csv")
    return client.post("/imports/", data=data, content_type="multipart/form-data")


def test_web_import_runs_in_the_background_and_shows_rejected_rows(client, auth, db, tmp_path):
    auth.login("admin")
    records = write_csv(tmp_path / "r.csv", RECORD_HEADER,
                        [record(1, "王小明", "rose.jpg"), record(2, "Two", "two.jpg")], "gbk").read_bytes()
    photos = make_zip(tmp_path / "p.zip", {"rose.jpg": people_photo("rose_leslie", 2),
                                           "two.jpg": group_photo()}).read_bytes()
    response = upload(client, auth, records, photos)
    assert response.status_code == 302
    job_id = int(response.headers["Location"].rstrip("/").split("/")[-1])
    state = wait_for_job(client, job_id)
    assert (state["status"], state["imported"], state["rejected"]) == ("done", 1, 1)
    assert state["processed"] == state["total"] == 2
    page = client.get(f"/imports/{job_id}").get_data(as_text=True)
    assert "找到 2 张人脸；照片中只能有一个人" in page         # the reason, in the page's language
    report = client.get(f"/imports/{job_id}/report")
    assert report.status_code == 200 and report.headers["Cache-Control"] == "no-store, private"
    assert "王小明" in report.get_data().decode("utf-8-sig")
    actions = {r["action"] for r in db.execute("SELECT action FROM audit_log")}
    assert {"import.start", "import.run", "import.view", "import.report.download"} <= actions
    assert list((tmp_path / "instance" / "uploads").iterdir()) == []  # uploads deleted after the job


def test_web_import_with_a_bad_header_fails_with_the_reason(client, auth, tmp_path):
    auth.login("admin")
    response = upload(client, auth, b"id,name\r\n1,x\r\n", make_zip(tmp_path / "p.zip", {}).read_bytes())
    job_id = int(response.headers["Location"].rstrip("/").split("/")[-1])
    state = wait_for_job(client, job_id)
    assert state["status"] == "failed" and "missing column(s) id_number" in state["error"]
    assert "缺少列 id_number" in client.get(f"/imports/{job_id}").get_data(as_text=True)
    english = client.get(f"/imports/{job_id}", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "missing column(s) id_number" in english


def test_web_import_refuses_photos_that_are_not_a_zip(client, auth, db):
    auth.login("admin")
    response = upload(client, auth, b"id_number,name,phone,photo\r\n", b"not a zip")
    assert response.status_code == 200
    assert "照片文件不是 zip 压缩包。" in response.get_data(as_text=True)
    job = db.execute("SELECT id, status, error FROM import_jobs").fetchone()
    # stored in English like every job error, and shown in the reader's language
    assert (job["status"], job["error"]) == ("failed", "The photos file is not a zip file.")
    english = client.get(f"/imports/{job['id']}", headers={"Accept-Language": "en"})
    assert "The photos file is not a zip file." in english.get_data(as_text=True)
    assert "照片文件不是 zip 压缩包。" in client.get(f"/imports/{job['id']}").get_data(as_text=True)


def test_running_job_page_shows_progress_and_polls(client, auth, db):
    from server.imports import create_job
    job_id = create_job(db, None)
    db.execute("UPDATE import_jobs SET status = 'running', processed = 3, total = 12 WHERE id = ?", [job_id])
    auth.login("admin")
    page = client.get(f"/imports/{job_id}").get_data(as_text=True)
    assert 'aria-valuenow="3"' in page and 'style="width: 25%"' in page
    assert "/static/js/import.js" in page and f'data-progress-url="/imports/{job_id}/progress"' in page
    assert client.get(f"/imports/{job_id}/report").status_code == 404  # no report until done


def test_jobs_of_a_stopped_server_fail_at_start_and_their_uploads_are_deleted(app, db):
    """A job whose process is gone ends as failed when a server starts, and the uploaded
    ID numbers, phones and photos go with it; a job this (live) process runs is left alone."""
    from app import create_app
    from server.imports import create_job
    gone, alive = create_job(db, None), create_job(db, None)
    db.execute("UPDATE import_jobs SET status = 'running', owner = ? WHERE id = ?",
               [f"{socket.gethostname()}:999999999:1", gone])
    uploads = Path(app.config["UPLOADS_DIR"]) / f"job-{gone}"
    uploads.mkdir()
    (uploads / "records.csv").write_text("id_number,name,phone,photo\n")
    create_app({"TESTING": True})
    status = dict(db.execute("SELECT id, status FROM import_jobs").fetchall())
    assert status == {gone: "failed", alive: "queued"}
    assert not uploads.exists()
    error = db.execute("SELECT error FROM import_jobs WHERE id = ?", [gone]).fetchone()[0]
    assert "run the import again" in error


def test_a_job_silent_for_a_minute_is_interrupted_even_from_another_host(db, app):
    from server.imports import create_job, fail_interrupted_jobs
    job_id = create_job(db, None)
    db.execute("UPDATE import_jobs SET owner = 'other-host:1:1', heartbeat_at = ? WHERE id = ?",
               ["2026-01-01T00:00:00Z", job_id])
    assert fail_interrupted_jobs(db, app.config["UPLOADS_DIR"]) == 1


# --- the enrolment bench --------------------------------------------------------------------

def test_bench_enroll_reports_the_project_and_the_naive_path(tmp_path, capsys):
    from bench import enroll
    photo_folder(tmp_path / "faces", {"rose.jpg": people_photo("rose_leslie", 2),
                                      "two.jpg": group_photo("kit_with_rose.jpg")})
    enroll.main([str(tmp_path / "faces"), "--count", "2", "--workers", "1"])
    report = json.loads(capsys.readouterr().out)
    for path in ("project", "project_small", "project_1_worker", "naive"):
        assert report[path]["photos"] == 2 and report[path]["accepted"] == 1, path
    assert report["project"]["reasons"] == {"2 faces found; the photo must show exactly one person": 1}
    assert report["naive"]["reasons"] == {"2 faces found": 1}
    assert report["project"]["photos_per_s"] > 0 and "meets_target" in report



def test_control_characters_reject_the_row_not_the_file(db, tmp_path, settings):
    photos = {"biden.jpg": people_photo("joe_biden"), "obama.jpg": people_photo("barack_obama")}
    result = run(db, tmp_path, settings, [record(1, "Jo\x00e", "biden.jpg"),
                                          record(2, "Barack", "obama.jpg")], photos)
    assert outcome(result, 2)[0] == "rejected" and "control character" in outcome(result, 2)[1]
    assert outcome(result, 3) == ("imported", "")


def test_report_cells_cannot_run_as_spreadsheet_formulas(db, tmp_path, settings):
    name = '=HYPERLINK("http://example.invalid","x")'
    result = run(db, tmp_path, settings, [record(1, name, "biden.jpg")],
                 {"biden.jpg": people_photo("joe_biden")})
    report = tmp_path / "report.csv"
    importer.write_report(report, result)
    assert "'=HYPERLINK" in report.read_text(encoding="utf-8-sig")
    assert importer.read_report(report)[0]["name"] == name  # shown as typed on the page


@pytest.mark.parametrize("encoding,delimiter,preamble", [
    ("utf-16", "\t", ""),          # Excel "Unicode text"
    ("utf-8-sig", ";", ""),        # Excel where the decimal mark is a comma
    ("utf-8", ";", "sep=;\n"),     # Excel's delimiter hint line
    ("gb18030", ",", ""),
])
def test_spreadsheet_exports_are_read(db, tmp_path, settings, encoding, delimiter, preamble):
    header = delimiter.join(RECORD_HEADER)
    row = delimiter.join([id_number(1), "王小明", "13800138000", "a.jpg"])
    path = tmp_path / "records.csv"
    path.write_bytes((preamble + header + "\n" + row + "\n").encode(encoding))
    photos = photo_folder(tmp_path / "photos", {"a.jpg": people_photo("joe_biden")})
    result = run_import(db, str(path), str(photos), None, settings)
    line = 3 if preamble else 2
    assert outcome(result, line) == ("imported", "")
    assert citizen(db, 1)["name"] == "王小明"
