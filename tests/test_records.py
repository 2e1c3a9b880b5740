"""One-citizen management and duplicate review: real photos through the real quality gate and
encoder, real SQLite, the admin pages through the test client."""
import io
import os

import pytest

import helpers

from conftest import csrf_from
from helpers import group_photo, id_number, people_photo, photo_folder, record, write_csv, RECORD_HEADER
from server import duplicates, enrolment
from server.audit import Actor
from server.gallery import gallery_delta
from server.importer import Settings, run_import

ADMIN = Actor("user", 1, "admin")


@pytest.fixture
def settings(app):
    return Settings.from_config(app.config)


def fields(n, name="张三", **extra):
    return {"id_number": id_number(n), "name": name, "phone": "139 0000 4321", "language": "zh",
            "district": "天河区", "consent": "yes", **extra}


def citizen(db, citizen_id):
    return db.execute("SELECT * FROM citizens WHERE id = ?", [citizen_id]).fetchone()


def template_rows(db, citizen_id):
    return db.execute("SELECT * FROM face_templates WHERE citizen_id = ? ORDER BY id",
                      [citizen_id]).fetchall()


def actions(db, target_id):
    return [r[0] for r in db.execute("SELECT action FROM audit_log WHERE target_id = ? ORDER BY id",
                                     [str(target_id)])]


def photo_file(app, name):
    return os.path.join(app.config["PHOTOS_DIR"], name)


# --- the plain functions ----------------------------------------------------------------------

def test_add_citizen_with_two_photos_holds_two_templates(app, db, settings):
    citizen_id = enrolment.add_citizen(db, ADMIN, fields(1, "Barack Obama"),
                                       [people_photo("barack_obama", 1), people_photo("barack_obama", 3)],
                                       settings)
    row = citizen(db, citizen_id)
    assert (row["phone"], row["consent"], row["district"]) == ("13900004321", 1, "天河区")
    templates = template_rows(db, citizen_id)
    assert len(templates) == 2 and all(os.path.isfile(photo_file(app, t["photo_path"])) for t in templates)
    assert row["photo_path"] == templates[0]["photo_path"]
    assert actions(db, citizen_id) == ["citizen.add"]
    [upsert] = gallery_delta(db, 0, site="天河区")["upserts"]  # its site's devices get both
    assert upsert["key"] == key_of(db, citizen_id) and len(upsert["templates"]) == 2


@pytest.mark.parametrize("change,photos,reason", [
    ({"id_number": "440106198001010010"}, [("barack_obama", 1)], "has a wrong check digit"),
    ({"name": "  "}, [("barack_obama", 1)], "name is empty"),
    ({"phone": "call me"}, [("barack_obama", 1)], "may contain only digits"),
    ({"language": "fr"}, [("barack_obama", 1)], "language must be one of zh, yue, en"),
    ({"consent": "maybe"}, [("barack_obama", 1)], "consent must be yes or no"),
    ({}, [], "photo is empty (needed unless consent is no)"),
    ({}, ["group"], "face"),
    ({}, ["text"], ""),
])
def test_the_form_refuses_what_the_import_refuses_with_the_same_reason(db, settings, change, photos,
                                                                       reason):
    data = [group_photo() if p == "group" else b"not an image" if p == "text" else people_photo(*p)
            for p in photos]
    with pytest.raises(enrolment.RecordRefused) as refused:
        enrolment.add_citizen(db, ADMIN, fields(1, **change), data, settings)
    assert reason in refused.value.reason
    assert db.execute("SELECT count(*) FROM citizens").fetchone()[0] == 0


def test_a_face_registered_under_another_id_number_is_held_for_review(db, settings):
    enrolment.add_citizen(db, ADMIN, fields(1, "Joe Biden"), [people_photo("joe_biden", 1)], settings)
    with pytest.raises(enrolment.DuplicateHeld) as held:
        enrolment.add_citizen(db, ADMIN, fields(2, "Someone"), [people_photo("joe_biden", 2)], settings)
    assert held.value.reason.startswith(
        f"possible duplicate identity: face matches ID number {id_number(1)}")
    [review] = duplicates.pending_reviews(db)       # as an import would have held it
    assert (review["id"], review["id_number"], review["match_name"]) == \
        (held.value.review_id, id_number(2), "Joe Biden")
    assert db.execute("SELECT count(*) FROM citizens").fetchone()[0] == 1
    with pytest.raises(enrolment.RecordRefused, match="already registered"):
        enrolment.add_citizen(db, ADMIN, fields(1, "Joe Biden"), [people_photo("joe_biden", 2)], settings)


def test_edit_add_and_replace_photos_bump_sync_and_are_audited(app, db, settings):
    citizen_id = enrolment.add_citizen(db, ADMIN, fields(1, "Kit"), [people_photo("kit_harington", 1)],
                                       settings)
    seq = citizen(db, citizen_id)["sync_seq"]
    assert enrolment.update_citizen(db, ADMIN, citizen(db, citizen_id),
                                    {"phone": "+86 139-1111-2222", "language": "en"}, "prc18") \
        == ["phone", "language"]
    row = citizen(db, citizen_id)
    assert (row["phone"], row["language"], row["name"]) == ("+8613911112222", "en", "Kit")
    assert row["sync_seq"] > seq
    with pytest.raises(enrolment.RecordRefused, match="must have 6 to 15 digits"):
        enrolment.update_citizen(db, ADMIN, row, {"phone": "123"}, "prc18")

    enrolment.add_photo(db, ADMIN, citizen(db, citizen_id), people_photo("kit_harington", 2), settings)
    assert len(template_rows(db, citizen_id)) == 2
    old = citizen(db, citizen_id)["photo_path"]
    enrolment.add_photo(db, ADMIN, citizen(db, citizen_id), people_photo("kit_harington", 3), settings,
                        replace=True)
    templates = template_rows(db, citizen_id)
    assert len(templates) == 1 and citizen(db, citizen_id)["photo_path"] == templates[0]["photo_path"]
    assert not os.path.exists(photo_file(app, old))  # the replaced photo is gone from the server
    with pytest.raises(enrolment.RecordRefused, match="possible duplicate identity"):
        other = enrolment.add_citizen(db, ADMIN, fields(2, "Rose"), [people_photo("rose_leslie", 1)],
                                      settings)
        enrolment.add_photo(db, ADMIN, citizen(db, other), people_photo("kit_harington", 1), settings)
    assert actions(db, citizen_id) == ["citizen.add", "citizen.update", "citizen.photo.add",
                                       "citizen.photo.replace"]


@pytest.mark.parametrize("how", ["withdraw", "remove"])
def test_withdrawing_consent_or_removing_deletes_face_data_and_devices_drop_the_citizen(
        app, db, settings, how):
    citizen_id = enrolment.add_citizen(db, ADMIN, fields(1, "Rose"),
                                       [people_photo("rose_leslie", 1), people_photo("rose_leslie", 2)],
                                       settings)
    paths = [t["photo_path"] for t in template_rows(db, citizen_id)]
    device_seq = db.execute("SELECT seq FROM sync_counter").fetchone()[0]  # a device is up to date
    action = enrolment.withdraw_consent if how == "withdraw" else enrolment.remove_citizen
    action(db, ADMIN, citizen(db, citizen_id), app.config["PHOTOS_DIR"])
    row = citizen(db, citizen_id)
    assert template_rows(db, citizen_id) == [] and row["photo_path"] is None and row["consent"] == 0
    assert (row["removed_at"] is not None) == (how == "remove")
    assert not any(os.path.exists(photo_file(app, p)) for p in paths)
    delta = gallery_delta(db, device_seq)
    assert delta["removals"] == [key_of(db, citizen_id)] and delta["upserts"] == []
    assert actions(db, citizen_id)[-1] == ("citizen.consent.withdraw" if how == "withdraw"
                                           else "citizen.remove")


def key_of(db, citizen_id):
    return db.execute("SELECT key FROM citizens WHERE id = ?", [citizen_id]).fetchone()[0]


# --- duplicate review -------------------------------------------------------------------------

@pytest.mark.face_model("dlib")
def test_duplicate_threshold_is_never_stricter_than_greeting_and_follows_the_budget(db):
    from db.queries import set_setting
    from server.calibration import threshold_for_size
    for enrolled in (1, 10, 100, 1000, 10000):  # never stricter than the greeting at that size
        assert duplicates.duplicate_threshold(db, enrolled) >= threshold_for_size(db, enrolled)
    # on the prior, East-Asian strangers are 5 % of pairs under 0.485: not every Chinese
    # import held for review (a tester's 40 people had 24 held at 0.45-0.58)
    assert duplicates.duplicate_threshold(db, 1) == 0.485
    at_1000 = duplicates.duplicate_threshold(db, 1000)
    assert 0.30 < at_1000 < 0.40  # greeting at 1,000 is 0.30
    set_setting(db, "duplicates.review_budget", 0.5)
    assert duplicates.duplicate_threshold(db, 1000) > at_1000


def test_duplicate_threshold_on_mobilefacenet_holds_a_second_photo_of_one_person(db):
    """On MobileFaceNet's prior the fraud check holds a face within the model's ceiling (1.10)
    for a small registry, tightening with its size; the same person's photos of the test set
    are 0.47-0.79 apart, different people's 1.1 or more."""
    from server.calibration import threshold_for_size
    ceiling = helpers.MODEL.bounds.duplicate_ceiling
    for enrolled in (1, 10, 100, 1000, 10000):
        assert threshold_for_size(db, enrolled) <= duplicates.duplicate_threshold(db, enrolled) <= ceiling
    assert duplicates.duplicate_threshold(db, 1) >= ceiling - 0.01
    assert duplicates.duplicate_threshold(db, 100) > 0.79      # past the same person's photos here


def import_people(db, tmp_path, settings, rows, photos):
    records = write_csv(tmp_path / "RECORDS.csv", RECORD_HEADER, rows)
    return run_import(db, str(records), str(photo_folder(tmp_path / "photos", photos)), None, settings)


def flagged_import(db, tmp_path, settings):
    photos = {"o1.jpg": people_photo("barack_obama", 1), "o4.jpg": people_photo("barack_obama", 4),
              "b1.jpg": people_photo("joe_biden", 1)}
    rows = [record(1, "Obama", "o1.jpg"), record(2, "Obama again", "o4.jpg"),
            record(3, "Biden", "b1.jpg")]
    return import_people(db, tmp_path, settings, rows, photos)


def test_a_flagged_row_is_held_for_review_once(db, tmp_path, settings):
    result = flagged_import(db, tmp_path, settings)
    assert [r.outcome for r in result.rows] == ["imported", "flagged", "imported"]
    held = duplicates.pending_reviews(db)
    assert len(held) == 1 and held[0]["id_number"] == id_number(2) and held[0]["match_name"] == "Obama"
    again = flagged_import(db, tmp_path, settings)
    assert [r.outcome for r in again.rows] == ["unchanged", "flagged", "unchanged"]
    assert len(duplicates.pending_reviews(db)) == 1


@pytest.mark.parametrize("decision", ["import", "discard", "add_to_existing"])
def test_the_admin_decides_and_the_decision_is_audited(app, db, tmp_path, settings, decision):
    flagged_import(db, tmp_path, settings)
    review = duplicates.review_row(db, duplicates.pending_reviews(db)[0]["id"])
    obama = review["match_citizen_id"]
    result = enrolment.decide_duplicate(db, ADMIN, review, decision, settings)
    new = db.execute("SELECT * FROM citizens WHERE id_number = ?", [id_number(2)]).fetchone()
    if decision == "import":
        assert result == new["id"] and new["name"] == "Obama again" and len(template_rows(db, new["id"])) == 1
    else:
        assert new is None
    assert len(template_rows(db, obama)) == (2 if decision == "add_to_existing" else 1)
    assert os.path.exists(photo_file(app, review["photo_path"])) == (decision != "discard")
    assert duplicates.pending_reviews(db) == []
    assert actions(db, review["id"])[-1] == f"duplicate.{decision}"
    with pytest.raises(enrolment.RecordRefused, match="already been decided"):
        enrolment.decide_duplicate(db, ADMIN, duplicates.review_row(db, review["id"]), "import", settings)


# --- the pages --------------------------------------------------------------------------------

def post(client, page, url, data, **kwargs):
    token = csrf_from(client.get(page).get_data(as_text=True))
    return client.post(url, data={**data, "csrf_token": token}, **kwargs)


def test_admin_adds_edits_and_removes_a_citizen_on_the_pages(app, db, client, auth):
    auth.login("admin")
    client.post("/lang/en", data={"csrf_token": auth.csrf_token()})
    response = post(client, "/admin/citizens/new", "/admin/citizens/new",
                    {**fields(1, "Alex"), "photos": [(io.BytesIO(people_photo("alex_lacamoire", 1)), "a.jpg"),
                                                     (io.BytesIO(people_photo("alex_lacamoire", 2)), "b.jpg")]},
                    content_type="multipart/form-data")
    assert response.status_code == 302
    url = response.headers["Location"]
    citizen_id = int(url.rstrip("/").split("/")[-1])
    page = client.get(url).get_data(as_text=True)
    assert "Alex" in page and page.count('class="photo small"') == 2
    post(client, url, url, {"name": "Alex L", "phone": "13900001111", "language": "en", "district": ""})
    assert citizen(db, citizen_id)["name"] == "Alex L"
    bad = post(client, url, url, {"name": "Alex L", "phone": "x", "language": "en", "district": ""})
    assert "may contain only digits" in client.get(bad.headers["Location"]).get_data(as_text=True)

    held = post(client, "/admin/citizens/new", "/admin/citizens/new",
                {**fields(2, "Alex twin"), "photos": (io.BytesIO(people_photo("alex_lacamoire", 2)), "c.jpg")},
                content_type="multipart/form-data")
    assert held.status_code == 302 and "/admin/duplicates/" in held.headers["Location"]
    review = client.get(held.headers["Location"]).get_data(as_text=True)   # both photos, at once
    assert "possible duplicate identity" in review and 'id="held-photo"' in review

    unticked = post(client, url, f"{url}/remove", {})
    assert citizen(db, citizen_id)["removed_at"] is None and unticked.status_code == 302
    post(client, url, f"{url}/remove", {"confirm": "yes"})
    assert citizen(db, citizen_id)["removed_at"] is not None and template_rows(db, citizen_id) == []


def test_a_record_changed_while_its_page_was_open_is_not_put_back(app, db, client, auth):
    """The form sends every field back: an admin correcting the district on a page opened
    before an import changed the phone put the old phone back."""
    import re
    auth.login("admin")
    client.post("/lang/en", data={"csrf_token": auth.csrf_token()})
    response = post(client, "/admin/citizens/new", "/admin/citizens/new",
                    {**fields(1, "Alex"), "photos": (io.BytesIO(people_photo("alex_lacamoire", 1)), "a.jpg")},
                    content_type="multipart/form-data")
    url = response.headers["Location"]
    citizen_id = int(url.rstrip("/").split("/")[-1])
    page = client.get(url).get_data(as_text=True)
    shown = {"seen_row": re.search(r'name="seen_row" value="([^"]*)"', page).group(1),
             "name": "Alex", "phone": citizen(db, citizen_id)["phone"], "language": "zh"}
    row = citizen(db, citizen_id)
    record = enrolment.check_record({**dict(row), "phone": "13911112222", "consent": "yes"}, "prc18",
                                    has_photo=True)            # what an import stores meanwhile
    db.execute("UPDATE citizens SET phone = ?, row_sha256 = ? WHERE id = ?",
               [record.phone, record.row_sha256(row["photo_sha256"]), citizen_id])
    token = csrf_from(page)
    refused = client.post(url, data={**shown, "district": "越秀区", "csrf_token": token})
    assert "changed while this page was open" in client.get(refused.headers["Location"]).get_data(as_text=True)
    assert (citizen(db, citizen_id)["phone"], citizen(db, citizen_id)["district"]) == ("13911112222", "天河区")
    page = client.get(url).get_data(as_text=True)           # looked again: the new phone is shown
    again = {**shown, "phone": "13911112222", "district": "越秀区", "csrf_token": csrf_from(page),
             "seen_row": re.search(r'name="seen_row" value="([^"]*)"', page).group(1)}
    client.post(url, data=again)
    assert (citizen(db, citizen_id)["phone"], citizen(db, citizen_id)["district"]) == ("13911112222", "越秀区")


def test_a_phone_photo_over_4_mb_is_taken_by_the_photo_forms(app, db, client, auth):
    auth.login("admin")
    big = people_photo("alex_lacamoire", 1) + b"\0" * (6 * 2 ** 20)   # a 6 MB file, as phones write
    response = post(client, "/admin/citizens/new", "/admin/citizens/new",
                    {**fields(1, "Alex"), "photos": (io.BytesIO(big), "phone.jpg")},
                    content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    citizen_id = int(response.headers["Location"].rstrip("/").split("/")[-1])
    url = f"/admin/citizens/{citizen_id}"
    post(client, url, f"{url}/photos", {"photo": (io.BytesIO(big), "again.jpg"), "mode": "add"},
         content_type="multipart/form-data")
    assert len(template_rows(db, citizen_id)) == 2
    huge = post(client, url, f"{url}/photos", {"photo": (io.BytesIO(b"\0" * (40 * 2 ** 20)), "x.jpg")},
                content_type="multipart/form-data", headers={"Accept-Language": "en"})
    assert huge.status_code == 413 and "larger than 32 MB" in huge.get_data(as_text=True)


def test_a_clerk_cannot_manage_citizens(client, auth):
    auth.login("clerk")
    assert client.get("/admin/citizens/new").status_code == 403
    assert client.get("/admin/duplicates/").status_code == 403


def test_duplicate_review_pages_show_both_photos_and_record_the_decision(app, db, client, auth,
                                                                        tmp_path, settings):
    flagged_import(db, tmp_path, settings)
    review_id = duplicates.pending_reviews(db)[0]["id"]
    auth.login("admin")
    listing = client.get("/admin/duplicates/").get_data(as_text=True)
    assert f"/admin/duplicates/{review_id}" in listing and id_number(2) not in listing  # masked
    page = client.get(f"/admin/duplicates/{review_id}").get_data(as_text=True)
    assert 'id="held-photo"' in page and 'id="existing-photo"' in page
    assert client.get(f"/admin/duplicates/{review_id}/photo").mimetype == "image/jpeg"
    post(client, f"/admin/duplicates/{review_id}", f"/admin/duplicates/{review_id}",
         {"decision": "import", "confirm_different": "yes"})
    assert db.execute("SELECT name FROM citizens WHERE id_number = ?", [id_number(2)]).fetchone()[0] \
        == "Obama again"
    entry = db.execute("SELECT * FROM audit_log WHERE action = 'duplicate.import'").fetchone()
    assert entry["actor_name"] == "admin" and entry["target_id"] == str(review_id)


def held_pair(db, tmp_path, settings):
    """Obama registered (phone and district on file) and a second photo of him held under
    another ID number; the review's id."""
    photos = {"o1.jpg": people_photo("barack_obama", 1), "o4.jpg": people_photo("barack_obama", 4)}
    import_people(db, tmp_path, settings, [record(1, "Obama", "o1.jpg", district="天河区"),
                                           record(2, "Obama again", "o4.jpg", district="越秀区")],
                  photos)
    [review] = duplicates.pending_reviews(db)
    return review["id"]


def buttons(page):
    """{button id: its class} of the review page's decision buttons."""
    import re
    return {m.group(2): m.group(1) or "" for m in re.finditer(
        r'<button type="submit" name="decision" value="[a-z_]+"(?: class="([^"]*)")? id="([a-z-]+)"', page)}


@pytest.mark.parametrize("distance, says", [
    (0.104, "far_under"), (0.30, "under"), (0.42, "just_under"), (0.435, "over"), (0.6, "over")])
def test_a_pairs_distance_is_said_against_its_limit(distance, says):
    assert duplicates.closeness(distance, 0.435) == says


def test_the_review_page_shows_both_records_whole_and_makes_same_person_the_first_answer(
        app, db, client, auth, tmp_path, settings):
    review_id = held_pair(db, tmp_path, settings)
    review = duplicates.review_row(db, review_id)
    registered = db.execute("SELECT * FROM citizens WHERE id_number = ?", [id_number(1)]).fetchone()
    auth.login("admin")
    page = client.get(f"/admin/duplicates/{review_id}", headers={"Accept-Language": "en"}).get_data(as_text=True)
    existing = page.split('id="existing"')[1].split("</table>")[0]
    for value in (id_number(1), "Obama", registered["phone"], "天河区"):    # in full: an admin page
        assert value in existing
    held = page.split('id="held"')[1].split("</table>")[0]
    assert id_number(2) in held and "越秀区" in held
    limit = f"{review['threshold']:.3f}"
    assert review["distance"] < review["threshold"] * duplicates.CLOSE_SHARE
    assert f"{review['distance']:.3f}</strong> —" in page
    assert f"under the limit {limit}: " in page and "the same person" in page
    shown = buttons(page)
    assert shown["discard"] == "primary"                 # the likely answer is the filled button
    assert "primary" not in shown["add-to-existing"] and "primary" not in shown["import"]
    assert 'name="confirm_different" value="yes" required' in page
    zh = client.get(f"/admin/duplicates/{review_id}", headers={"Accept-Language": "zh"}).get_data(as_text=True)
    assert f"低于上限 {limit}" in zh and "同一人" in zh
    # the registered citizen's record was shown: audited as a view of them, as their own page is
    viewed = db.execute("SELECT detail FROM audit_log WHERE action = 'citizen.view' AND target_id = ?",
                        [str(registered["id"])]).fetchall()
    assert len(viewed) == 2 and f'"review": {review_id}' in viewed[0][0]


def test_importing_over_a_close_match_is_refused_without_the_confirmation(
        app, db, client, auth, tmp_path, settings):
    review_id = held_pair(db, tmp_path, settings)
    auth.login("admin")
    url = f"/admin/duplicates/{review_id}"
    for unconfirmed in ({}, {"confirm_different": ""}, {"confirm_different": "no"}):
        refused = post(client, url, url, {"decision": "import", **unconfirmed},
                       headers={"Accept-Language": "en"})
        assert refused.status_code == 302 and refused.headers["Location"].endswith(url)
        assert db.execute("SELECT 1 FROM citizens WHERE id_number = ?", [id_number(2)]).fetchone() is None
        assert duplicates.review_row(db, review_id)["status"] == "pending"
    page = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Not imported: tick the box to confirm these are two different people." in page
    assert "duplicate.import" not in actions(db, review_id)
    post(client, url, url, {"decision": "import", "confirm_different": "yes"})
    assert db.execute("SELECT name FROM citizens WHERE id_number = ?", [id_number(2)]).fetchone()[0] \
        == "Obama again"
    assert actions(db, review_id)[-1] == "duplicate.import"


def test_a_same_person_answer_needs_no_confirmation(app, db, client, auth, tmp_path, settings):
    review_id = held_pair(db, tmp_path, settings)
    auth.login("admin")
    url = f"/admin/duplicates/{review_id}"
    post(client, url, url, {"decision": "discard"})
    assert duplicates.review_row(db, review_id)["status"] == "discard"


def test_decided_reviews_stay_listed_with_who_decided_when_and_what(
        app, db, client, auth, tmp_path, settings):
    flagged_import(db, tmp_path, settings)
    held_first = duplicates.pending_reviews(db)[0]["id"]
    import_people(db, tmp_path, settings,
                  [record(4, "Biden again", "b2.jpg")], {"b2.jpg": people_photo("joe_biden", 2)})
    held_second = [r["id"] for r in duplicates.pending_reviews(db) if r["id"] != held_first][0]
    auth.login("admin")
    listing = client.get("/admin/duplicates/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert 'id="no-decided"' in listing
    post(client, f"/admin/duplicates/{held_first}", f"/admin/duplicates/{held_first}", {"decision": "discard"})
    post(client, f"/admin/duplicates/{held_second}", f"/admin/duplicates/{held_second}",
         {"decision": "import", "confirm_different": "yes"})
    listing = client.get("/admin/duplicates/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert 'id="no-duplicates"' in listing                  # nothing waits any more ...
    decided = listing.split('id="decided"')[1].split("</table>")[0]
    rows = decided.split("<tr data-id=")[1:]                # ... and both decisions are kept
    assert [int(r.split('"')[1]) for r in rows] == [held_second, held_first]    # newest first
    stamps = {r["id"]: r["decided_at"] for r in duplicates.decided_reviews(db)}
    from server.times import localtime
    with app.test_request_context(headers={"Accept-Language": "en"}):
        for row, review_id, what in [(rows[0], held_second, "Imported as a different person"),
                                     (rows[1], held_first, "Discarded as the same person")]:
            assert what in row and '<td class="decider">admin</td>' in row
            assert localtime(stamps[review_id]) in row
    assert id_number(2) not in listing                        # the list still masks ID numbers
    page = client.get(f"/admin/duplicates/{held_first}", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert 'id="decided"' in page and "admin" in page and 'id="same-form"' not in page
    zh = client.get("/admin/duplicates/", headers={"Accept-Language": "zh"}).get_data(as_text=True)
    assert "已决定" in zh and "丢弃" in zh


def test_every_photo_of_the_same_people_under_new_id_numbers_is_held(db, tmp_path, settings):
    """The 645-photos-of-38-people report: each person's photos under different ID numbers.
    Only each person's first photo is imported; every other one is held for review, matching
    its own person (the shared photos: 15 of 5 people)."""
    from conftest import PEOPLE
    photos, rows, person_of = {}, [], {}
    for person in sorted(p.name for p in PEOPLE.iterdir()):
        for path in sorted(PEOPLE.joinpath(person).glob("*.jpg")):
            n = len(rows) + 1
            photos[f"{n}.jpg"] = path.read_bytes()
            rows.append(record(n, person, f"{n}.jpg"))
            person_of[id_number(n)] = person
    result = import_people(db, tmp_path, settings, rows, photos)
    imported = [r for r in result.rows if r.outcome == "imported"]
    assert sorted(r.name for r in imported) == sorted(set(person_of.values()))
    held = duplicates.pending_reviews(db, limit=100)
    assert len(held) == len(rows) - len(imported)
    assert all(person_of[h["id_number"]] == h["match_name"] for h in held)


def test_the_web_import_page_leads_to_the_held_duplicates(app, db, client, auth, tmp_path):
    from helpers import make_zip
    from test_import import upload, wait_for_job
    auth.login("admin")
    records = write_csv(tmp_path / "r.csv", RECORD_HEADER, [record(1, "Rose", "r1.jpg"),
                                                           record(2, "Rose again", "r2.jpg")]).read_bytes()
    photos = make_zip(tmp_path / "p.zip", {"r1.jpg": people_photo("rose_leslie", 1),
                                           "r2.jpg": people_photo("rose_leslie", 2)}).read_bytes()
    job_id = int(upload(client, auth, records, photos).headers["Location"].rstrip("/").split("/")[-1])
    assert wait_for_job(client, job_id)["status"] == "done"
    page = client.get(f"/imports/{job_id}").get_data(as_text=True)
    assert 'id="duplicates-link"' in page and "已留待审核" in page
    held = duplicates.pending_reviews(db)
    assert [h["id_number"] for h in held] == [id_number(2)]
    entry = db.execute("SELECT * FROM audit_log WHERE action = 'duplicate.held'").fetchone()
    assert entry["actor_name"] == "admin"
