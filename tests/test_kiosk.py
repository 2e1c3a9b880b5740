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
import helpers
from helpers import enrol, key_of, new_device, of_kind, run_agent, session_count
from device.speech import Speaker
from videos import visitor_video

pytestmark = pytest.mark.video

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
    assert [(g["citizen_key"], g["name"]) for g in greeted] == [(key_of(db, obama), "Barack Obama")]
    assert greeted[0]["t"] <= GREETING_TARGET_S
    assert greeted[0]["distance"] < helpers.one_to_one_limit()
    assert greeted[0]["margin"] > helpers.MODEL.bounds.margin
    assert not of_kind(events, "unknown_visitor")
    assert [e["session_id"] for e in of_kind(events, "session_uploaded")] == [greeted[0]["session_id"]]
    row = db.execute("SELECT * FROM sessions").fetchone()
    assert (row["citizen_id"], row["outcome"], row["liveness"]) == (obama, "greeted", "not_run")
    assert row["identified_by"] == "face"
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
    row = db.execute("SELECT * FROM sessions").fetchone()
    assert (row["outcome"], row["citizen_id"]) == ("unknown", None)


def test_of_two_faces_only_the_one_at_the_screen_is_greeted(kiosk, db, obama_biden, tmp_path):
    """Obama at the kiosk, Biden further back: Biden's name and case file never appear on
    the screen in front of Obama; Biden is served when he steps up."""
    from videos import FPS, background, face_patch, paste, write_video
    frames = []
    for i in range(round(4.0 * FPS)):
        frame = background()
        if i < 2.0 * FPS:
            paste(frame, face_patch("barack_obama", 2, face_px=150), 200, 60)
            paste(frame, face_patch("joe_biden", 2, face_px=90), 480, 120)
        else:
            paste(frame, face_patch("joe_biden", 2, face_px=150), 200, 60)
        frames.append(frame)
    events, _ = run_agent(*kiosk, write_video(tmp_path / "two.avi", frames), tmp_path / "kiosk.db")
    obama, biden = (key_of(db, c) for c in obama_biden)
    greeted = [(g["citizen_key"], g["t"]) for g in of_kind(events, "greeted")]
    assert [key for key, _ in greeted] == [obama, biden] and greeted[1][1] >= 2.0
    assert of_kind(events, "unknown_visitor") == []


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
    """tests/data/video: a real face appears about 1 s into the clip (after a title card)."""
    import cv2
    from recognition import engine
    from videos import real_clip
    capture = cv2.VideoCapture(str(VIDEO))
    capture.set(cv2.CAP_PROP_POS_MSEC, 8_500)
    ok, frame = capture.read()
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    location = engine.detect_faces(rgb, 640)[0]
    enrol(db, "blinking", name="林小姐", language="zh", encodings=[helpers.MODEL.encoding(rgb, location)])
    enrol(db, "barack_obama")
    video = real_clip(tmp_path / "clip.avi", start_s=0.5, seconds=3.0)
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
    assert set(greeted) >= {"event", "citizen_key", "name", "t", "distance", "margin"}
    assert of_kind(events, "session_uploaded")[0]["session_id"] == greeted["session_id"]
    assert events[-1] == {"event": "exit", "outbox": 0, "dead_letters": 0, "refused_reports": 0}


def test_a_damaged_device_store_is_refused_in_one_line_and_kept(tmp_path):
    store = tmp_path / "kiosk.db"
    store.write_bytes(b"\x00garbage" * 500)              # a disk error, a copy cut short
    video = visitor_video(tmp_path / "v.avi", [], seconds=0.5, present=[(9, 9)])
    result = subprocess.run(
        [sys.executable, "-m", "kiosk", "--server", "http://127.0.0.1:9", "--token", "t",
         "--camera", str(video), "--headless", "--speech", "off", "--exit-at-end",
         "--store", str(store)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot use the device store" in result.stderr and "move it aside" in result.stderr
    assert store.read_bytes() == b"\x00garbage" * 500     # its undelivered sessions stay in it


# --- camera sources --------------------------------------------------------------------------

def test_video_file_without_realtime_yields_every_frame_with_its_time(tmp_path):
    from device.camera import open_source
    camera = open_source(visitor_video(tmp_path / "v.avi", [], seconds=1.0, present=[(9, 9)]))
    frames = list(iter(camera.read, None))
    assert [f.index for f in frames] == list(range(15))
    assert frames[-1].t == pytest.approx(14 / 15) and frames[0].image.shape == (360, 640, 3)


class FakeClock:
    """A clock that moves only when someone sleeps on it."""
    def __init__(self):
        self.t = 0.0

    def now(self):
        return self.t

    def sleep(self, seconds):
        self.t += max(0.0, seconds)


def test_realtime_file_drops_frames_a_slow_engine_missed(tmp_path):
    """Like a live camera: after a slow frame, the next one is the newest, not the next in line."""
    from device.camera import open_source
    clock = FakeClock()
    camera = open_source(visitor_video(tmp_path / "v.avi", [], seconds=2.0, present=[(9, 9)]),
                         realtime=True, clock=clock)
    first = camera.read()
    clock.sleep(0.6)   # the engine is busy with the first frame
    second = camera.read()
    assert first.t == 0 and second.t >= 0.6 - 1 / 15
    assert camera.dropped == second.index - 1 > 0


def test_folder_of_images_is_a_source_in_natural_order(tmp_path):
    import cv2
    from device.camera import open_source
    from videos import background
    for n in (10, 2, 1):
        cv2.imwrite(str(tmp_path / f"frame{n}.jpg"), background(n))
    (tmp_path / "notes.txt").write_text("not an image")
    camera = open_source(tmp_path, folder_fps=2)
    assert [(f.index, f.t) for f in iter(camera.read, None)] == [(0, 0.0), (1, 0.5), (2, 1.0)]


def test_a_folders_oversized_or_broken_images_are_read_small_or_skipped(tmp_path):
    import cv2
    from PIL import Image
    from device.camera import open_source
    from videos import background
    cv2.imwrite(str(tmp_path / "1.jpg"), background(1))
    Image.new("L", (16320, 12240), 90).save(tmp_path / "2.jpg")        # a 200 MP phone photo
    ok, small = cv2.imencode(".jpg", background(3))
    data = bytearray(small.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (65000).to_bytes(2, "big") * 2              # its header says 65000x65000
    (tmp_path / "3.jpg").write_bytes(bytes(data))
    (tmp_path / "4.jpg").write_text("<html>not a photo</html>")
    cv2.imwrite(str(tmp_path / "5.jpg"), background(5))
    frames = list(iter(open_source(tmp_path, folder_fps=5).read, None))
    # a 30000x30000 header took 9 GB and a minute, this one crashed the kiosk: now skipped
    assert [(f.index, f.image.shape) for f in frames] == [
        (0, background(1).shape), (1, (3060, 4080, 3)), (4, background(5).shape)]


def test_a_folder_whose_images_are_all_unreadable_is_a_camera_failure(tmp_path):
    from device.camera import SourceError, open_source
    (tmp_path / "1.jpg").write_text("<html>not a photo</html>")
    (tmp_path / "2.png").write_bytes(b"")
    camera = open_source(tmp_path)
    with pytest.raises(SourceError, match="could be read"):
        camera.read()


def test_a_damaged_frame_in_the_middle_of_a_video_does_not_end_it(tmp_path):
    # an MJPEG AVI stopped at its first damaged frame; the good frames after it were never seen
    import random
    import cv2
    from device.camera import open_source
    from videos import background
    path = tmp_path / "damaged.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 360))
    for n in range(60):
        writer.write(background(n))
    writer.release()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4000] = random.Random(1).randbytes(4000)     # a frame or two destroyed
    path.write_bytes(bytes(data))
    indexes = [f.index for f in iter(open_source(path).read, None)]
    assert indexes[-1] >= 55 and 50 <= len(indexes) < 60   # it stopped at the damage (~30)


def test_bad_camera_source_is_refused(tmp_path):
    from device.camera import SourceError, open_source
    with pytest.raises(SourceError):
        open_source(tmp_path / "missing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(SourceError):
        open_source(tmp_path / "junk.mp4")


class FlakyCapture:
    """cv2.VideoCapture of a camera that delivers `good` frames per opening, then fails
    `bad` reads (a loose cable); after `deaths` openings it never delivers again."""
    opened = 0

    def __init__(self, index, good=3, bad=4, deaths=99):
        FlakyCapture.opened += 1
        self.good, self.bad, self.dead = good, bad, FlakyCapture.opened > deaths

    def isOpened(self):
        return True

    def set(self, *_):
        return True

    def read(self):
        import numpy as np
        if self.dead:
            return False, None
        if self.good:
            self.good -= 1
            return True, np.zeros((360, 640, 3), np.uint8)
        if self.bad:
            self.bad -= 1
            return False, None
        return True, np.zeros((360, 640, 3), np.uint8)

    def release(self):
        pass


def flaky_camera(monkeypatch, deaths):
    import cv2
    from device.camera import CameraSource
    FlakyCapture.opened = 0
    monkeypatch.setattr(cv2, "VideoCapture", lambda i: FlakyCapture(i, deaths=deaths))
    return CameraSource(0, recover_s=2.0, reopen_s=0.3, clock=FakeClock())


def test_a_camera_hiccup_costs_a_few_reads_and_a_reopening(monkeypatch):
    camera = flaky_camera(monkeypatch, deaths=99)
    frames = [camera.read() for _ in range(10)]
    assert [f.index for f in frames] == list(range(10))
    assert FlakyCapture.opened > 1


def test_a_camera_gone_for_good_is_an_error_not_a_kiosk_idling_in_the_dark(monkeypatch):
    from device.camera import SourceError
    camera = flaky_camera(monkeypatch, deaths=1)
    assert [camera.read().index for _ in range(3)] == [0, 1, 2]
    with pytest.raises(SourceError, match="no frame for 2 s"):
        camera.read()
    assert FlakyCapture.opened > 1


def test_stopping_the_device_ends_the_wait_for_a_dead_camera(monkeypatch):
    import threading
    from device.camera import WallClock
    camera = flaky_camera(monkeypatch, deaths=1)
    camera._clock = WallClock()          # real time: the stop comes from another thread
    [camera.read() for _ in range(3)]
    threading.Timer(0.3, camera.stop).start()
    assert camera.read() is None               # SIGTERM during the wait: an end, not an error


def test_the_device_exits_non_zero_when_its_camera_dies(kiosk, db, tmp_path, monkeypatch):
    """The agent stops with the camera's error instead of idling (the CLI exits 1 on it)."""
    from device.camera import SourceError

    class DyingCamera:
        dropped = 0

        def read(self):
            raise SourceError("camera 0 has delivered no frame for 15 s")

        def close(self):
            pass
    monkeypatch.setattr("helpers.open_source", lambda camera: DyingCamera())
    with pytest.raises(SourceError):
        run_agent(*kiosk, "0", tmp_path / "kiosk.db")


def test_a_4k_cameras_snapshot_fits_the_server_and_still_shows_the_face(tmp_path):
    """Someone leaning into a 4K camera: a face 1,100 px tall. The snapshot is scaled down to
    what the server accepts, and the server's own face check still recognises it."""
    import cv2
    from device.agent import SNAPSHOT_MAX_SIDE, snapshot_jpeg
    from helpers import person_encoding
    from recognition import engine
    from server.api import SNAPSHOT_MAX_BYTES, SNAPSHOT_MAX_PIXELS
    from server.facecheck import snapshot_face
    from videos import face_patch
    frame = np.full((2160, 3840, 3), 180, np.uint8)
    patch = face_patch("barack_obama", 2, face_px=1100)[:2160, :2000]
    frame[:patch.shape[0], 900:900 + patch.shape[1]] = patch
    location = engine.detect_faces(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), 640)[0]
    assert engine.face_height(location) > 900
    data = snapshot_jpeg(frame, location)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert max(image.shape[:2]) <= SNAPSHOT_MAX_SIDE and len(data) < SNAPSHOT_MAX_BYTES
    (tmp_path / "s.jpg").write_bytes(data)
    seen = snapshot_face(helpers.MODEL, str(tmp_path / "s.jpg"), SNAPSHOT_MAX_BYTES, SNAPSHOT_MAX_PIXELS)
    assert helpers.MODEL.distance(seen, person_encoding("barack_obama", 1)) < helpers.one_to_one_limit()


# --- greeting text -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, language, templates, honorifics, text", [
    ("Barack Obama", "en", None, None, "Hello, Barack Obama!"),
    ("王小明", "zh", None, None, "王小明，您好！"),
    ("王小明", "zh", {"zh": "{surname}{honorific}，您好"}, {"zh": "先生"}, "王先生，您好"),
    ("欧阳娜娜", "zh", {"zh": "{surname}{honorific}，您好"}, {"zh": "女士"}, "欧阳女士，您好"),
    ("陈大文", "yue", {"yue": "{given_name}，你好"}, None, "大文，你好"),
    ("Joe Biden", "en", {"en": "Good morning, {honorific} {surname}"}, {"en": "Mr"}, "Good morning, Mr Biden"),
    ("Joe Biden", "fr", None, None, "Hello, Joe Biden!"),            # no template: English
    ("Joe Biden", "en", {"en": "Hello {nickname}"}, None, "Hello, Joe Biden!"),  # broken: default
])
def test_greeting_text_follows_the_template(name, language, templates, honorifics, text):
    from device.speech import greeting_text
    assert greeting_text(name, language, templates, honorifics) == text


def test_speech_writes_numbered_wavs_in_each_language(tmp_path):
    from device.speech import greeting_text
    speaker = Speaker(str(tmp_path / "hello.wav"), backlog=3)
    for name, language in [("王小明", "zh"), ("陈大文", "yue"), ("Joe Biden", "en")]:
        speaker.say(greeting_text(name, language), language)
    speaker.close()
    assert speaker.files == [str(tmp_path / n) for n in ("hello.wav", "hello-2.wav", "hello-3.wav")]
    for path in speaker.files:
        samples, rate = wav_samples(path)
        assert len(samples) > rate * 0.5 and np.abs(samples).max() > 3000


def test_a_new_speaker_after_another_says_every_utterance(tmp_path):
    # A kiosk restarts its speaker (and the tests make many): espeak is one per process,
    # and a start that cancels its leftover work used to silence a later greeting.
    from device.speech import greeting_text
    for run in range(4):
        Speaker(str(tmp_path / f"warm-{run}.wav")).close()
        speaker = Speaker(str(tmp_path / f"run-{run}.wav"), backlog=3)
        for name, language in [("王小明", "zh"), ("陈大文", "yue"), ("Joe Biden", "en")]:
            speaker.say(greeting_text(name, language), language)
        speaker.close()
        assert [len(wav_samples(path)[0]) > 0 for path in speaker.files] == [True] * 3
