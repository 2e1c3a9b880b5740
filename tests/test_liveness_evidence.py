"""The server sees the blink itself: a liveness pass counts only with face crops that show the
greeted citizen's eyes closing and opening again (server/evidence.py).

Real frames of the blinking woman of tests/data/video, cropped as the kiosk crops them
(device/evidence.py); the attacks are what a stolen kiosk token can post."""
import numpy as np
import pytest

import helpers
from conftest import PEOPLE
from device.evidence import _crop
from helpers import bearer, blink_evidence, enrol, enrol_her, her_frames, id_number, key_of
from recognition.images import jpeg_bytes, load_image
from test_casefile import open_file, post_session


def report(client, token, session_id, evidence):
    body = {"result": "passed", "t": 3.0}
    if evidence is not None:
        body["evidence"] = evidence
    return client.post(f"/api/v1/sessions/{session_id}/liveness", json=body, headers=bearer(token))


def liveness_of(db, session_id):
    return db.execute("SELECT liveness FROM sessions WHERE id = ?", [session_id]).fetchone()[0]


def still_crops(count=5, seed=0):
    """Her open-eyed face as a photo held to the camera: one frame, moved a little and with
    sensor noise each time, so no two crops are the same picture."""
    _t, rgb, (top, right, bottom, left) = her_frames()[0]
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(count):
        dy, dx = (int(v) for v in rng.integers(-6, 7, 2))
        noisy = np.clip(rgb.astype(np.float32) + rng.normal(0, 4, rgb.shape), 0, 255).astype(np.uint8)
        crops.append((0.1 * i, jpeg_bytes(_crop(noisy, (top + dy, right + dx, bottom + dy, left + dx)))))
    return crops


def photo_crops(person, index=1, count=5):
    rgb = load_image(PEOPLE / person / f"{index}.jpg")
    h, w = rgb.shape[:2]
    return [(0.1 * i, jpeg_bytes(rgb[i:h - 4 + i, i:w - 4 + i])) for i in range(count)]


@pytest.fixture
def her(db):
    return enrol_her(db)


def test_her_real_blink_opens_the_case_file(client, db, token, her):
    sid = post_session(client, token, her)
    assert report(client, token, sid, blink_evidence()).status_code == 201
    assert liveness_of(db, sid) == "passed"
    assert open_file(client, token, sid, her).status_code == 200


@pytest.mark.parametrize("evidence, reason", [
    (lambda: None, "needs its evidence"),
    (lambda: blink_evidence(still_crops()), "no blink"),
    (lambda: blink_evidence([(0.1 * i, helpers._blink_crops()[0][1]) for i in range(4)]), "twice"),
    (lambda: blink_evidence([(0.1 * i, jpeg_bytes(load_image(helpers._blink_crops()[0][1]), q))
                             for i, q in enumerate((95, 90, 85, 80))]), "same picture"),
    (lambda: blink_evidence([(t + 120, data) for t, data in helpers._blink_crops()]), "not of this visit"),
    (lambda: blink_evidence(list(reversed(helpers._blink_crops()))), "rise"),
], ids=["none", "a still photo moved", "one crop repeated", "one crop re-encoded", "from later",
        "out of order"])
def test_no_photo_or_replayed_picture_passes_and_the_visit_stays_failed(client, db, token, her,
                                                                         evidence, reason):
    sid = post_session(client, token, her)
    answer = report(client, token, sid, evidence())
    assert answer.status_code == 403 and reason in answer.get_json()["error"]["message"]
    assert liveness_of(db, sid) == "failed"
    assert report(client, token, sid, blink_evidence()).status_code == 409   # no second try
    assert open_file(client, token, sid, her).status_code == 403


@pytest.mark.parametrize("crops", [
    lambda: [],
    lambda: helpers._blink_crops()[:1],
    lambda: [(0.01 * i, helpers._blink_crops()[i % 5][1]) for i in range(50)],
    lambda: [(0.0, b"not a jpeg at all")] * 4,
], ids=["no crops", "one crop", "50 crops", "not base64 images"])
def test_malformed_evidence_is_a_clear_400_and_changes_nothing(client, db, token, her, crops):
    sid = post_session(client, token, her)
    answer = report(client, token, sid, blink_evidence(list(crops())))
    assert answer.status_code in (400, 403) and "error" in answer.get_json()
    assert liveness_of(db, sid) in ("not_run", "failed")
    assert open_file(client, token, sid, her).status_code == 403


def test_a_blink_of_someone_else_does_not_pass_for_the_citizen_greeted(client, db, token):
    """The greeted citizen is Obama (the token posted his key with his photo); the blink shown
    is another person's: the server finds her, not him, in the crops."""
    obama = enrol(db, "barack_obama")
    sid = post_session(client, token, obama, snapshot_of=("barack_obama", 2))
    answer = report(client, token, sid, blink_evidence())
    assert answer.status_code == 403 and "citizen greeted" in answer.get_json()["error"]["message"]
    assert open_file(client, token, sid, obama).status_code == 403


def test_photos_of_another_face_show_no_blink(client, db, token, her):
    sid = post_session(client, token, her)
    answer = report(client, token, sid, blink_evidence(photo_crops("rose_leslie")))
    assert answer.status_code == 403


def test_a_typed_id_number_must_be_the_face_that_blinked(client, db, token, her):
    """Liveness first, then the ID number: the number of someone else whose photo is held up at
    the screen (encoding and crop of his photo) opens nothing, since she is the one who blinked."""
    import base64
    obama = enrol(db, "barack_obama", name="奥先生")
    number = id_number(11)
    db.execute("UPDATE citizens SET id_number = ? WHERE id = ?", [number, obama])
    sid = post_session(client, token, None)
    assert report(client, token, sid, blink_evidence()).status_code == 201
    body = {"id_number": number, "encoding": list(map(float, helpers.person_encoding("barack_obama", 1))),
            "snapshot": base64.b64encode(helpers.snapshot_jpeg("barack_obama", 2)).decode()}
    answer = client.post(f"/api/v1/sessions/{sid}/identify", json=body, headers=bearer(token))
    assert answer.status_code == 200 and answer.get_json()["matched"] is False
    # her own number, with her face, is hers
    her_number = id_number(12)
    db.execute("UPDATE citizens SET id_number = ? WHERE id = ?", [her_number, her])
    body = {"id_number": her_number, "encoding": list(map(float, helpers.her_encoding())),
            "snapshot": base64.b64encode(helpers.her_snapshot()).decode()}
    answer = client.post(f"/api/v1/sessions/{sid}/identify", json=body, headers=bearer(token))
    assert answer.get_json()["matched"] is True and answer.get_json()["citizen_key"] == key_of(db, her)
