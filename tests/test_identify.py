"""No dead end: a visitor the camera did not recognise types their ID number; the server checks
their face 1:1 against that citizen's templates, and the visit goes on as a greeting."""
import base64

import numpy as np
import pytest

from helpers import MODEL, enrol, her_encoding, id_number, person_encoding, snapshot_jpeg
from test_casefile import audit_actions, bearer, open_file, post_session, report

HER_ID = id_number(7)
DIMS = MODEL.dims      # the registry's face model's templates


@pytest.fixture
def obama(db):
    """An enrolled citizen (photo 1) with a resident ID number on file."""
    citizen_id = enrol(db, "blinking", name="奥先生", language="zh", encodings=[her_encoding()])
    db.execute("UPDATE citizens SET id_number = ? WHERE id = ?", [HER_ID, citizen_id])
    return citizen_id


def crop(person="blinking", index=1):
    return base64.b64encode(snapshot_jpeg(person, index)).decode()


def identify(client, token, session_id, number, person="blinking", index=1, live=True, face_now=None):
    """Type number for the visit, after the device reported the visitor's blink (unless live is
    False); face_now: the (person, index) whose photo is sent as the face at the screen (by
    default the one whose encoding is sent)."""
    if live:
        report(client, token, session_id)
    body = {"id_number": number, "encoding": list(map(float, person_encoding(person, index))),
            "snapshot": crop(*(face_now or (person, index)))}
    return client.post(f"/api/v1/sessions/{session_id}/identify", headers=bearer(token), json=body)


def identify_with(client, token, session_id, encoding):
    """Type her number with this encoding as the device's (her blink and her face at the screen)."""
    report(client, token, session_id)
    body = {"id_number": HER_ID, "encoding": list(map(float, encoding)), "snapshot": crop()}
    return client.post(f"/api/v1/sessions/{session_id}/identify", headers=bearer(token), json=body)


def test_the_right_face_with_the_right_id_number_becomes_a_greeting_that_opens_the_file(
        client, db, token, obama):
    session_id = post_session(client, token, None, snapshot_of=("blinking", 1))
    answer = identify(client, token, session_id, HER_ID.lower()).get_json()   # "x" typed small
    assert answer["matched"] is True and answer["name"] == "奥先生" and answer["language"] == "zh"
    row = db.execute("SELECT * FROM sessions WHERE id = ?", [session_id]).fetchone()
    assert (row["outcome"], row["citizen_id"], row["identified_by"]) == ("greeted", obama, "id_number")
    assert open_file(client, token, session_id, obama).status_code == 200   # it blinked first
    [entry] = audit_actions(db, "identify.match")
    assert HER_ID not in entry["detail"] and HER_ID[-4:] in entry["detail"]


def test_an_encoding_without_the_face_is_not_an_id_number_oracle(client, db, token, obama):
    """A device holds Obama's template: sent alone with his ID number it used to answer "yes,
    that is Mr Obama's number". Without the face at the screen nothing is checked."""
    session_id = post_session(client, token, None, snapshot_of=("blinking", 1))
    report(client, token, session_id)
    response = client.post(f"/api/v1/sessions/{session_id}/identify", headers=bearer(token),
                           json={"id_number": HER_ID, "encoding": list(map(float, person_encoding("blinking")))})
    assert response.status_code == 400 and "snapshot" in response.get_json()["error"]["message"]
    assert audit_actions(db, "identify.match") == [] and audit_actions(db, "identify.no_match") == []


def test_the_face_at_the_screen_as_ok_is_pressed_is_checked_and_kept(app, client, db, token, obama):
    """The session's snapshot is from when the visitor was not recognised (here: someone
    else entirely); the crop sent with the number shows who is there now, and it is what
    the server checks and the clerk sees."""
    session_id = post_session(client, token, None, snapshot_of=("rose_leslie", 1))
    answer = identify(client, token, session_id, HER_ID, face_now=("blinking", 1)).get_json()
    assert answer["matched"] is True
    row = db.execute("SELECT * FROM sessions WHERE id = ?", [session_id]).fetchone()
    from server import calibration
    assert row["snapshot_distance"] < calibration.one_to_one_threshold(db)
    with open(f"{app.config['SNAPSHOTS_DIR']}/{row['snapshot_path']}", "rb") as f:
        assert f.read() == snapshot_jpeg("blinking", 1)
    assert open_file(client, token, session_id, obama).status_code == 200


def test_a_matching_encoding_with_another_face_at_the_screen_is_no_match(client, db, token, obama):
    session_id = post_session(client, token, None, snapshot_of=("blinking", 1))
    answer = identify(client, token, session_id, HER_ID, face_now=("joe_biden", 1))
    assert answer.get_json() == {"matched": False, "citizen_key": None, "name": None, "language": None}
    [entry] = audit_actions(db, "identify.no_match")
    assert "snapshot_distance" in entry["detail"]
    assert db.execute("SELECT outcome FROM sessions WHERE id = ?", [session_id]).fetchone()[0] == "unknown"


@pytest.mark.parametrize("snapshot", ["not base64!", base64.b64encode(b"GIF89a").decode(), 12])
def test_a_crop_that_is_not_a_jpeg_is_refused(client, token, obama, snapshot):
    session_id = post_session(client, token, None)
    report(client, token, session_id)
    response = client.post(f"/api/v1/sessions/{session_id}/identify", headers=bearer(token), json={
        "id_number": HER_ID, "encoding": [0.1] * DIMS, "snapshot": snapshot})
    assert response.status_code == 400 and "snapshot" in response.get_json()["error"]["message"]


def test_another_face_and_an_unknown_id_number_get_the_same_answer(client, db, token, obama):
    first, second = post_session(client, token, None), post_session(client, token, None)
    wrong_face = identify(client, token, first, HER_ID, person="joe_biden", index=1)
    no_such_id = identify(client, token, second, id_number(8))
    assert wrong_face.status_code == no_such_id.status_code == 200
    assert wrong_face.get_json() == no_such_id.get_json() == {
        "matched": False, "citizen_key": None, "name": None, "language": None}
    assert db.execute("SELECT count(*) FROM sessions WHERE outcome = 'greeted'").fetchone()[0] == 0
    assert len(audit_actions(db, "identify.no_match")) == 2


def test_a_visit_gets_three_tries_then_must_see_a_clerk(client, token, obama):
    session_id = post_session(client, token, None)
    for _ in range(3):
        assert identify(client, token, session_id, id_number(9)).status_code == 200
    assert identify(client, token, session_id, HER_ID).status_code == 429


@pytest.mark.parametrize("body", [
    {"id_number": "440106198001010071", "encoding": [0.1] * DIMS},     # wrong check digit
    {"id_number": HER_ID, "encoding": [0.1] * (DIMS - 1)},
    {"id_number": HER_ID, "encoding": [0.1] * 128},                  # dlib's size: another model
    {"id_number": HER_ID, "encoding": ["x"] * DIMS},
    {"id_number": HER_ID, "encoding": [1e9] * DIMS},
    {"id_number": HER_ID, "encoding": [10 ** 400] + [0.1] * (DIMS - 1)},   # numpy cannot convert it
    {"encoding": [0.1] * DIMS},
])
def test_bad_bodies_are_refused(client, token, obama, body):
    session_id = post_session(client, token, None)
    report(client, token, session_id)
    response = client.post(f"/api/v1/sessions/{session_id}/identify", json={**body, "snapshot": crop()},
                           headers=bearer(token))
    assert response.status_code == 400 and "error" in response.get_json()


def test_liveness_comes_first(client, db, token, obama):
    """A photo held up with a known ID number: no blink reported, no check, no name."""
    session_id = post_session(client, token, None)
    response = identify(client, token, session_id, HER_ID, live=False)
    assert response.status_code == 409 and "liveness first" in response.get_json()["error"]["message"]
    assert audit_actions(db, "identify.match") == [] and audit_actions(db, "identify.no_match") == []
    assert report(client, token, session_id, "failed").status_code == 201
    assert identify(client, token, session_id, HER_ID, live=False).status_code == 409   # failed stays failed


def test_a_greeted_visit_cannot_be_turned_into_someone_else(client, token, obama):
    session_id = post_session(client, token, obama)
    assert identify(client, token, session_id, HER_ID).status_code == 409


def test_the_one_to_one_point_comes_from_the_registrys_own_faces(client, db, token, obama):
    """On a registry whose different citizens come closer than the prior's faces do, the
    ID-number check tightens: a distance the prior accepts is refused."""
    import json

    from server import calibration
    from test_calibration import spread_faces
    her = her_encoding()
    other = np.random.default_rng(5).normal(size=DIMS)
    other -= other.dot(her) * her                  # a direction away from her template
    sent = her * 0.755 + other / np.linalg.norm(other) * 0.656    # unit length, 0.7 from her
    genuine = MODEL.distance(sent, her)
    prior = calibration.one_to_one_threshold(db)
    assert prior == 0.83 > genuine          # MobileFaceNet's prior at a false accept in 10,000
    first = post_session(client, token, None)
    assert identify_with(client, token, first, sent).get_json()["matched"] is True

    for i, face in enumerate(spread_faces(40, 0.7, seed=3, dims=DIMS)):   # strangers 0.7 apart
        enrol(db, "barack_obama", name=f"市民{i}", encodings=[face])
    report = calibration.measure_registry(db)
    point = report["one_to_one"]
    assert point["threshold"] == calibration.one_to_one_threshold(db) < genuine
    assert point["fmr_upper"] <= point["target_fmr"] == 0.0001 \
        or point["threshold"] == MODEL.bounds.threshold_floor
    second = post_session(client, token, None)
    assert identify_with(client, token, second, sent).get_json()["matched"] is False
    detail = json.loads(audit_actions(db, "identify.no_match")[-1]["detail"])
    assert detail["threshold"] == point["threshold"] and detail["distance"] == pytest.approx(genuine, abs=1e-3)