"""Citizen pages: search, masked list, full detail with photo and cases, every view audited."""
import json
import re

import pytest

from helpers import CASE_HEADER, RECORD_HEADER, id_number, people_photo, photo_folder, record, write_csv
from server.privacy import mask
from server.importer import Settings, run_import


@pytest.fixture
def loaded(app, db, tmp_path):
    """Three citizens (one with an enrolled photo) and a case, imported the real way."""
    rows = [record(1, "Kit Harington", "kit.jpg", phone="020-8888-0001", district="天河区"),
            record(2, "张三", "", consent="no", phone="13900000002"),
            record(3, "李四", "", consent="no", phone="13900000003")]
    records = write_csv(tmp_path / "RECORDS.csv", RECORD_HEADER, rows)
    cases = write_csv(tmp_path / "CASES.csv", CASE_HEADER,
                      [["GS-2025-001", id_number(1), "个税汇算", "open", "2024 年度汇算清缴", "5", ""]])
    photos = photo_folder(tmp_path / "photos", {"kit.jpg": people_photo("kit_harington")})
    run_import(db, str(records), str(photos), str(cases), Settings.from_config(app.config))
    return {n: db.execute("SELECT id FROM citizens WHERE id_number = ?", [id_number(n)]).fetchone()[0]
            for n in (1, 2, 3)}


def audit_entries(db, action):
    return db.execute("SELECT * FROM audit_log WHERE action = ? ORDER BY id", [action]).fetchall()


def listed_names(page):
    return re.findall(r'<tr><td class="id-number">[^<]*</td><td>([^<]*)</td>', page)


@pytest.mark.parametrize("q, names", [
    ("", ["Kit Harington", "张三", "李四"]),
    ("张", ["张三"]),
    (id_number(3), ["李四"]),
    ("13900000002", ["张三"]),
    ("88880001", ["Kit Harington"]),
    ("020-8888 0001", ["Kit Harington"]),
    (id_number(3)[:6] + " " + id_number(3)[6:14] + " " + id_number(3)[14:], ["李四"]),
    ("nobody", []),
])
def test_search_by_id_number_name_or_phone(client, auth, loaded, q, names):
    auth.login("clerk")
    page = client.get("/citizens/", query_string={"q": q}).get_data(as_text=True)
    assert listed_names(page) == names


def test_list_masks_id_numbers_and_phones_and_audits_the_search(client, auth, db, loaded):
    auth.login("clerk")
    page = client.get("/citizens/", query_string={"q": "李四"}).get_data(as_text=True)
    assert id_number(3) not in page and mask(id_number(3)) in page
    assert mask(id_number(3)) == id_number(3)[:4] + "*" * 10 + id_number(3)[-4:]
    assert "13900000003" not in page and "139****0003" in page
    [entry] = audit_entries(db, "citizen.search")
    detail = json.loads(entry["detail"])
    assert entry["actor_name"] == "clerk" and detail["q"] == "李四" and detail["shown"] == [loaded[3]]


def test_list_pages_by_keyset(app, client, auth, db, tmp_path):
    rows = [record(n, f"Person {n:03d}", "", consent="no") for n in range(1, 61)]
    run_import(db, str(write_csv(tmp_path / "r.csv", RECORD_HEADER, rows)),
               str(photo_folder(tmp_path / "p", {})), None, Settings.from_config(app.config))
    auth.login("clerk")
    first = client.get("/citizens/").get_data(as_text=True)
    assert len(listed_names(first)) == 50
    next_url = re.search(r'id="next-page" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = client.get(next_url).get_data(as_text=True)
    assert listed_names(second) == [f"Person {n:03d}" for n in range(51, 61)]
    assert 'id="next-page"' not in second


def test_detail_shows_everything_in_full_with_photo_and_cases(client, auth, db, loaded):
    auth.login("clerk")
    page = client.get(f"/citizens/{loaded[1]}").get_data(as_text=True)
    assert id_number(1) in page and "02088880001" in page and "天河区" in page
    assert "GS-2025-001" in page and "2024 年度汇算清缴" in page
    assert f'src="/citizens/{loaded[1]}/photo"' in page
    [entry] = audit_entries(db, "citizen.view")
    assert entry["target_id"] == str(loaded[1]) and entry["actor_name"] == "clerk"


def test_citizen_without_consent_has_no_photo_or_template(client, auth, loaded):
    auth.login("admin")
    page = client.get(f"/citizens/{loaded[2]}").get_data(as_text=True)
    assert "/photo" not in page
    assert re.search(r'id="templates">(无|none)<', page)
    assert client.get(f"/citizens/{loaded[2]}/photo").status_code == 404


def test_photo_is_served_uncached_and_audited(client, auth, db, loaded):
    auth.login("clerk")
    response = client.get(f"/citizens/{loaded[1]}/photo")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert response.data == people_photo("kit_harington")
    assert response.headers["Cache-Control"] == "no-store, private"
    [entry] = audit_entries(db, "citizen.photo.view")
    assert entry["target_id"] == str(loaded[1])


def test_unknown_citizen_is_404(client, auth, loaded):
    auth.login("clerk")
    assert client.get("/citizens/9999").status_code == 404
    assert client.get("/citizens/9999/photo").status_code == 404
