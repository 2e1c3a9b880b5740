"""An unknown visit the clerk can resolve: the nearest citizens and the refusing rule beside
the snapshot, and attaching the visit to a citizen after an ID check (real photos, real SQLite)."""
import json
import os

import pytest

from conftest import csrf_from
from helpers import add_device, add_session, id_number, key_of, people_photo
from server import enrolment
from server.audit import Actor
from server.importer import Settings


@pytest.fixture
def visit(app, db):
    """Obama and Biden enrolled from real photos; an unknown visit (Obama's 2nd photo) that the
    device refused by the threshold at 0.43 with a margin of 0.21."""
    settings = Settings.from_config(app.config)
    admin = Actor("user", 1, "admin")
    obama = enrolment.add_citizen(db, admin, {"id_number": id_number(1), "name": "奥巴马",
                                              "phone": "13800000001"},
                                  [people_photo("barack_obama", 1)], settings)
    biden = enrolment.add_citizen(db, admin, {"id_number": id_number(2), "name": "拜登",
                                              "phone": "13800000002"},
                                  [people_photo("joe_biden", 1)], settings)
    device, _ = add_device(db)
    session = add_session(app, db, device, snapshot=("barack_obama", 2))
    db.execute("UPDATE sessions SET candidates = ?, refused_by = 'threshold', distance = 0.43,"
               " margin = 0.21 WHERE id = ?",
               [json.dumps([{"key": key_of(db, obama), "distance": 0.43},
                            {"key": key_of(db, biden), "distance": 0.64},
                            {"key": "c_gone", "distance": 0.7}]), session])
    return {"obama": obama, "biden": biden, "session": session}


def page_of(client, session):
    return client.get(f"/console/sessions/{session}").get_data(as_text=True)


def attach(client, session, **data):
    url = f"/console/sessions/{session}"
    token = csrf_from(client.get(url).get_data(as_text=True))
    return client.post(f"{url}/attach", data={**data, "csrf_token": token})


def test_the_clerk_sees_the_nearest_citizens_and_why_nobody_was_greeted(client, auth, visit):
    auth.login("clerk")
    client.post("/lang/en", data={"csrf_token": auth.csrf_token()})
    page = page_of(client, visit["session"])
    assert "further away than the match threshold" in page
    assert page.index("奥巴马") < page.index("拜登")
    assert "0.430" in page and "0.210" in page  # distance and margin to the next
    assert id_number(1) not in page and id_number(1)[:4] + "**" in page  # masked
    assert f"/citizens/{visit['obama']}/photo" in page and "No longer in the registry" in page
    client.post("/lang/zh", data={"csrf_token": auth.csrf_token()})
    assert "最接近的市民超出了匹配阈值" in page_of(client, visit["session"])


def test_attaching_needs_the_id_check_and_a_known_id_number(db, client, auth, visit):
    auth.login("clerk")
    client.post("/lang/en", data={"csrf_token": auth.csrf_token()})
    for data, message in [({"id_number": id_number(1)}, "checked the visitor&#39;s ID document"),
                          ({"id_number": "12345", "id_checked": "yes"}, "Type the ID number"),
                          ({"id_number": id_number(9), "id_checked": "yes"}, "No citizen has this ID")]:
        response = attach(client, visit["session"], **data)
        assert message in client.get(response.headers["Location"]).get_data(as_text=True)
    assert db.execute("SELECT citizen_id FROM sessions").fetchone()[0] is None


def test_the_clerk_attaches_the_visit_and_adds_the_snapshot_as_a_template(app, db, client, auth, visit):
    auth.login("clerk")
    seq = db.execute("SELECT sync_seq FROM citizens WHERE id = ?", [visit["obama"]]).fetchone()[0]
    attach(client, visit["session"], id_number=id_number(1).lower(), id_checked="yes",
           add_template="yes")
    row = db.execute("SELECT citizen_id, review_status, outcome, identified_by FROM sessions").fetchone()
    assert tuple(row) == (visit["obama"], "confirmed", "unknown", "id_document")
    templates = db.execute("SELECT source, session_id FROM face_templates WHERE citizen_id = ?"
                           " ORDER BY id", [visit["obama"]]).fetchall()
    assert [tuple(t) for t in templates] == [("enrolment", None), ("confirmed_session", visit["session"])]
    assert db.execute("SELECT sync_seq FROM citizens WHERE id = ?", [visit["obama"]]).fetchone()[0] > seq
    # the snapshot is purged after retention, the template stays: a level face crop is kept
    # with it, so that the next face model can encode it again
    from PIL import Image
    crop = db.execute("SELECT photo_path FROM face_templates WHERE session_id = ?",
                      [visit["session"]]).fetchone()[0]
    with Image.open(os.path.join(app.config["PHOTOS_DIR"], crop)) as kept:
        assert kept.size == (256, 256)
    # ... and it is the same face for every model: encoded again, it is the template kept
    import helpers
    from recognition import images, models, quality
    stored = db.execute("SELECT encoding FROM face_templates WHERE session_id = ?",
                        [visit["session"]]).fetchone()[0]
    rgb = images.load_image(os.path.join(app.config["PHOTOS_DIR"], crop))
    for model in models.PROFILES.values():
        again = quality.enrolment_template(rgb, model).encoding
        assert model.distance(again, helpers.person_encoding("barack_obama", 1, model.name)) \
            < model.bounds.same_face
    assert helpers.MODEL.distance(helpers.MODEL.from_blob(stored), quality.enrolment_template(
        rgb, helpers.MODEL).encoding) < helpers.MODEL.bounds.same_face / 2
    entry = db.execute("SELECT * FROM audit_log WHERE action = 'session.attach'").fetchone()
    assert entry["actor_name"] == "clerk" and json.loads(entry["detail"]) == \
        {"citizen_id": visit["obama"], "id_document_checked": True}
    page = page_of(client, visit["session"])
    assert 'id="attached-to"' in page and "工作人员核验身份证件" in page
    again = attach(client, visit["session"], id_number=id_number(2), id_checked="yes")
    assert again.status_code == 302
    assert db.execute("SELECT citizen_id FROM sessions").fetchone()[0] == visit["obama"]


def test_a_snapshot_that_fails_the_quality_gate_is_attached_without_a_template(app, db, client,
                                                                                auth, visit):
    from helpers import group_photo
    path = db.execute("SELECT snapshot_path FROM sessions").fetchone()[0]
    with open(f"{app.config['SNAPSHOTS_DIR']}/{path}", "wb") as f:
        f.write(group_photo())
    auth.login("clerk")
    client.post("/lang/en", data={"csrf_token": auth.csrf_token()})
    response = attach(client, visit["session"], id_number=id_number(2), id_checked="yes",
                      add_template="yes")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "not added as a face template" in page
    assert db.execute("SELECT citizen_id FROM sessions").fetchone()[0] == visit["biden"]
    assert db.execute("SELECT count(*) FROM face_templates WHERE session_id IS NOT NULL").fetchone()[0] == 0


def test_the_clerk_resolves_an_unknown_visit_in_chromium(live_server, chromium_page, db, visit):
    from browser import log_in, screenshot
    page = chromium_page
    log_in(page, live_server.url, "clerk")
    page.goto(f"{live_server.url}/console/sessions/{visit['session']}")
    page.wait_for_function("[...document.querySelectorAll('#candidates img, #snapshot')]"
                           ".every(img => img.naturalWidth > 0)")
    assert page.locator("#candidates tr.candidate").count() == 3
    screenshot(page, "session_unknown_candidates")
    page.fill("#attach-id-number", id_number(1))
    page.check("#id-checked")
    page.check("#attach-template")
    page.click("#attach")
    page.wait_for_selector("#attached-to")
    screenshot(page, "session_attached")
    assert page.inner_text("#attached-to") == "奥巴马"
