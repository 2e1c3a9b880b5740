"""Blink evidence made from one still photo, and real evidence sent again, are refused
(server/evidence.py); her real blink still passes. The attacks are those of the security
review with a stolen device token: copies of a photo moved, re-encoded, made brighter, and a
copy squeezed upright, which reads as "eyes closed"; bench/liveness_attacks.py measures the
same on every photo of tests/data."""
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

import helpers
from bench.liveness_attacks import attacks
from conftest import person_photo
from db import now_iso, transaction
from helpers import blink_evidence, enrol_her, her_frames
from recognition import engine
from recognition.images import jpeg_bytes, load_image
from server import evidence, purge
from test_casefile import open_file, post_session
from test_liveness_evidence import liveness_of, report


def _stills():
    """Her open-eyed frame of the video and a photo of someone else, each (rgb, location)."""
    _t, rgb, location = her_frames()[0]
    photo = load_image(person_photo("rose_leslie", 1))
    return {"her frame": (rgb, location), "a photo": (photo, engine.detect_faces(photo, 640)[0])}


def _attack(still, kind):
    rgb, location = _stills()[still]
    return attacks(rgb, location, np.random.default_rng(0))[kind]


def _refusal(crops):
    with pytest.raises(evidence.EvidenceRefused) as refused:
        evidence.check(crops, crops[-1][0] + 1, helpers.MODEL)
    return refused.value.reason


@pytest.mark.parametrize("still", ["her frame", "a photo"])
@pytest.mark.parametrize("kind", ["shifted", "brightness", "re-encoded", "rotated"])
def test_copies_of_one_photo_show_no_blink(still, kind):
    reason = _refusal(_attack(still, kind))
    assert reason.startswith("the crops show no blink") or reason == "two crops are the same picture"


@pytest.mark.parametrize("still", ["her frame", "a photo"])
@pytest.mark.parametrize("kind", ["squeezed_0.6", "squeezed_0.7", "stretched_open", "combined"])
def test_a_squeezed_copy_is_no_closed_eye(still, kind):
    """Shifted (and brighter, rotated, re-encoded: "combined") copies with one squeezed
    upright as the "closed" crop: its eyelid gap shrinks, and so does the rest of the face."""
    assert _refusal(_attack(still, kind)) in ("the face changes shape between crops",
                                              "a crop's eyes are too small to read")


def test_a_brighter_copy_reencoded_at_the_same_place_is_the_same_picture():
    crops = helpers._blink_crops()
    brighter = list(crops)
    rgb = load_image(crops[0][1])
    brighter[1] = (crops[1][0], jpeg_bytes(
        np.clip(rgb.astype(np.float32) + 12, 0, 255).astype(np.uint8), 95))
    assert _refusal(brighter) == "two crops are the same picture"


def test_her_real_blink_is_accepted():
    encodings, signatures = evidence.check(list(helpers._blink_crops()), 10.0, helpers.MODEL)
    assert len(encodings) == len(signatures) == len(helpers._blink_crops())


def test_a_squeezed_closed_crop_over_the_server_flow_fails_the_visit(client, db, token):
    her = enrol_her(db)
    sid = post_session(client, token, her)
    answer = report(client, token, sid, blink_evidence(_attack("her frame", "squeezed_0.6")))
    assert answer.status_code == 403 and "changes shape" in answer.get_json()["error"]["message"]
    assert liveness_of(db, sid) == "failed"
    assert open_file(client, token, sid, her).status_code == 403


def test_the_same_evidence_for_a_second_visit_of_the_citizen_is_refused(client, db, token):
    her = enrol_her(db)
    first = post_session(client, token, her)
    assert report(client, token, first, blink_evidence()).status_code == 201
    second = post_session(client, token, her)
    answer = report(client, token, second, blink_evidence())
    assert answer.status_code == 403 and "another visit" in answer.get_json()["error"]["message"]
    assert liveness_of(db, second) == "failed"
    assert open_file(client, token, second, her).status_code == 403
    # the first visit's own report sent again is still its pass, not a replay
    assert report(client, token, first, blink_evidence()).status_code == 200
    assert open_file(client, token, first, her).status_code == 200


def test_signatures_older_than_the_window_are_purged(client, db, token):
    her = enrol_her(db)
    sid = post_session(client, token, her)
    assert report(client, token, sid, blink_evidence()).status_code == 201
    later = datetime.now(timezone.utc) + timedelta(days=evidence.REPLAY_WINDOW_DAYS + 1)
    assert purge.purge_crop_signatures(db, datetime.now(timezone.utc)) == 0
    assert purge.purge_crop_signatures(db, later) == 1
    with transaction(db):
        assert db.execute("SELECT COUNT(*) FROM liveness_signatures").fetchone()[0] == 0


def _reference_distance(old, new):
    """picture_distance written the slow way, from its definition: the inner part of the old
    signature against each shift of the new one by up to SIGNATURE_SHIFT cells, each
    normalised, the smallest mean difference."""
    m, side = evidence.SIGNATURE_SHIFT, evidence.SIGNATURE_SIDE

    def normalised(grid):
        grid = grid - grid.mean()
        return grid / (grid.std() + 1e-6)

    inner = normalised(np.asarray(old, np.float64)[m:side - m, m:side - m])
    new = np.asarray(new, np.float64)
    return min(np.abs(inner - normalised(new[m + dy:side - m + dy, m + dx:side - m + dx])).mean()
               for dy in range(-m, m + 1) for dx in range(-m, m + 1))


def test_all_at_once_distances_match_one_pair_at_a_time():
    _encodings, signatures = evidence.check(list(helpers._blink_crops()), 10.0, helpers.MODEL)
    rng = np.random.default_rng(3)
    shifted = np.roll(signatures[0], 1, axis=1)           # the same picture, one cell over
    noise = rng.normal(size=signatures[0].shape)
    olds, news = list(signatures) + [noise], [shifted] + list(signatures[1:3])
    table = evidence.picture_distances(olds, news)
    assert table.shape == (len(olds), len(news))
    for i, old in enumerate(olds):
        for j, new in enumerate(news):
            assert table[i, j] == pytest.approx(_reference_distance(old, new), abs=1e-4)
    assert table[0, 0] < evidence.SAME_PICTURE < table[-1].min()


def _store_passes(db, citizen_id, count, signatures):
    """`count` earlier passes of the citizen (other sessions), each with these signatures."""
    stamp = now_iso()
    with transaction(db):
        for i in range(count):
            db.execute("INSERT INTO liveness_signatures (citizen_id, session_id, signatures, created_at)"
                       " VALUES (?, ?, ?, ?)",
                       [citizen_id, f"earlier-{i}", evidence.signatures_blob(signatures), stamp])


def _other_signatures():
    rng = np.random.default_rng(5)
    side = evidence.SIGNATURE_SIDE
    return rng.normal(size=(5, side, side)).astype(np.float32)


def test_a_real_blink_beside_a_full_month_of_other_passes_still_passes(client, db, token):
    her = enrol_her(db)
    _store_passes(db, her, evidence.REPLAY_PASSES, _other_signatures())
    sid = post_session(client, token, her)
    assert report(client, token, sid, blink_evidence()).status_code == 201
    assert open_file(client, token, sid, her).status_code == 200


def test_more_passes_a_month_than_are_compared_sends_her_to_a_clerk(client, db, token):
    """Fail closed: comparing only the newest passes would let 61 captured blinks take turns."""
    her = enrol_her(db)
    _store_passes(db, her, evidence.REPLAY_PASSES + 1, _other_signatures())
    sid = post_session(client, token, her)
    answer = report(client, token, sid, blink_evidence())
    assert answer.status_code == 403 and "see a clerk" in answer.get_json()["error"]["message"]
    assert liveness_of(db, sid) == "failed"
    assert open_file(client, token, sid, her).status_code == 403


def test_a_pass_stored_while_hers_was_compared_is_still_caught(client, db, token, monkeypatch):
    """The same crops sent for two visits at once: the other visit's pass lands between the
    comparison outside the lock and the re-read under it."""
    from server import casefile
    her = enrol_her(db)
    sid = post_session(client, token, her)
    _encodings, signatures = evidence.check(list(helpers._blink_crops()), 10.0, helpers.MODEL)
    first_look = casefile._crops_seen_before

    def and_meanwhile(db_, row, seen, after=0, locked=False):
        answer = first_look(db_, row, seen, after=after, locked=locked)
        if not locked:
            _store_passes(db_, her, 1, signatures)
        return answer
    monkeypatch.setattr(casefile, "_crops_seen_before", and_meanwhile)
    answer = report(client, token, sid, blink_evidence())
    assert answer.status_code == 403 and "another visit" in answer.get_json()["error"]["message"]
    assert liveness_of(db, sid) == "failed"
