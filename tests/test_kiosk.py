"""The kiosk agent on real videos against a real server on 127.0.0.1: who is greeted, when, how often.

Times asserted are the events' t, seconds of *video* time: every frame is processed (no
--realtime here), so they do not depend on how busy the machine is.
"""
import json
import subprocess
import sys
import wave

import numpy as np
import pytest

from conftest import VIDEO
from device_helpers import enrol, new_device, of_kind, run_agent, session_count
from kiosk.speech import Speaker
from videos import visitor_video

GREETING_TARGET_S = 0.5


@pytest.fixture
def kiosk(live_server, db, tmp_path):
    """A registered device on a live server: (server url, token)."""
    return live_server.url, new_device(db)


@pytest.fixture
def obama_biden(db):
    return enrol(db, "barack_obama"), enrol(db, "joe_biden")


def wav_samples(path):
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16), w.getframerate()


def test_enrolled_citizen_is_greeted_by_name_within_target_and_the_visit_recorded(
        kiosk, db, obama_biden, tmp_path):
    obama, _ = obama_biden
    video = visitor_video(tmp_path / "obama.avi", [("barack_obama", 2)])  # another photo than enrolled
    speaker = Speaker(str(tmp_path / "greeting.wav"))
    events, _ = run_agent(*kiosk, video, tmp_path / "kiosk.db", speaker=speaker)
    greeted = of_kind(events, "greeted")
    assert [(g["citizen_id"], g["name"]) for g in greeted] == [(obama, "Barack Obama")]
    assert greeted[0]["t"] <= GREETING_TARGET_S
    assert greeted[0]["distance"] < 0.45 and greeted[0]["margin"] > 0.06
    assert not of_kind(events, "unknown_visitor")
    assert [e["session_id"] for e in of_kind(events, "session_uploaded")] == [greeted[0]["session_id"]]
    row = db.conn.execute("SELECT * FROM sessions").fetchone()
    assert (row["citizen_id"], row["outcome"], row["liveness"]) == (obama, "greeted", "not_run")
    assert row["snapshot_path"] and row["time_to_greet"] <= GREETING_TARGET_S
    # The greeting was spoken: a WAV with real sound in it, not silence.
    samples, rate = wav_samples(tmp_path / "greeting.wav")
    assert len(samples) > rate * 0.5
    assert np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 300


def test_unknown_visitor_is_never_named(kiosk, db, obama_biden, tmp_path):
    video = visitor_video(tmp_path / "kit.avi", ["kit_harington"])
    events, _ = run_agent(*kiosk, video, tmp_path / "kiosk.db")
    assert of_kind(events, "greeted") == []
    assert len(of_kind(events, "unknown_visitor")) == 1
    row = db.conn.execute("SELECT * FROM sessions").fetchone()
    assert (row["outcome"], row["citizen_id"]) == ("unknown", None)


def test_two_faces_are_each_greeted_once(kiosk, db, obama_biden, tmp_path):
    video = visitor_video(tmp_path / "two.avi", [("barack_obama", 2), ("joe_biden", 2)], seconds=2)
    events, _ = run_agent(*kiosk, video, tmp_path / "kiosk.db")
    assert sorted(g["citizen_id"] for g in of_kind(events, "greeted")) == sorted(obama_biden)
    assert of_kind(events, "unknown_visitor") == []
    assert session_count(db, outcome="greeted") == 2


@pytest.mark.parametrize("regreet_after_s, greetings", [(60.0, 1), (1.0, 2)])
def test_one_greeting_per_visit(kiosk, db, obama_biden, tmp_path, regreet_after_s, greetings):
    """In view 0-1.4 s, away 1.4-3 s, back 3-4 s: the same visit unless the absence was long
    enough to count as leaving (regreet_after_s)."""
    video = visitor_video(tmp_path / "back.avi", [("barack_obama", 2)], seconds=4.0,
                          present=[(0, 1.4), (3.0, 4.0)])
    events, _ = run_agent(*kiosk, video, tmp_path / "kiosk.db", regreet_after_s=regreet_after_s)
    greeted = of_kind(events, "greeted")
    assert len(greeted) == greetings
    assert greeted[0]["t"] <= GREETING_TARGET_S
    if greetings == 2:
        assert 3.0 <= greeted[1]["t"] <= 3.0 + GREETING_TARGET_S
    assert session_count(db) == greetings


def test_real_video_person_greeted_soon_after_she_appears(kiosk, db, tmp_path):
    """../shared/video: a real face appears about 1 s into the clip (after a title card)."""
    import cv2
    from recognition import engine
    from videos import shared_clip
    capture = cv2.VideoCapture(str(VIDEO))
    capture.set(cv2.CAP_PROP_POS_MSEC, 12_000)
    ok, frame = capture.read()
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    location = engine.detect_faces(rgb, 640)[0]
    enrol(db, "blinking", name="林小姐", language="zh", encodings=[engine.face_encoding(rgb, location)])
    enrol(db, "barack_obama")
    video = shared_clip(tmp_path / "clip.avi", start_s=4.0, seconds=3.0)
    events, _ = run_agent(*kiosk, video, tmp_path / "kiosk.db")
    greeted = of_kind(events, "greeted")
    assert [g["name"] for g in greeted] == ["林小姐"]
    assert 0.3 < greeted[0]["t"] < 1.0 + GREETING_TARGET_S


def test_cli_runs_the_agent_and_writes_json_lines(kiosk, db, obama_biden, tmp_path):
    url, token = kiosk
    video = visitor_video(tmp_path / "obama.avi", [("barack_obama", 2)], seconds=1.5)
    result = subprocess.run(
        [sys.executable, "-m", "kiosk", "--server", url, "--token", token, "--camera", str(video),
         "--headless", "--speech", "off", "--events", "-", "--exit-at-end",
         "--store", str(tmp_path / "kiosk.db")],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    greeted = of_kind(events, "greeted")[0]
    assert set(greeted) >= {"event", "citizen_id", "name", "t", "distance", "margin"}
    assert of_kind(events, "session_uploaded")[0]["session_id"] == greeted["session_id"]
    assert events[-1] == {"event": "exit", "outbox": 0, "dead_letters": 0}
