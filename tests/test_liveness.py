"""Blink liveness: the real blinking video passes; photo attacks never do.

Videos are built once per module (tests/liveness_videos.py) at 480-640 px, so the real
dlib runs stay small on 2 cores.
"""
import json
import subprocess
import sys

import pytest

from bench import liveness as bench
from recognition.liveness import BlinkDetector, BlinkPolicy, blinks_in

from conftest import VIDEO, person_photo
import liveness_videos as videos

pytestmark = pytest.mark.video

# In the test clip the face appears at 1.5 s and the first blink starts at 2.17 s.
SLICE_START, SLICE_END = 1.0, 4.5


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("liveness_videos")


@pytest.fixture(scope="module")
def real_slice(video_dir):
    return videos.video_slice(VIDEO, video_dir / "real.mp4", SLICE_START, SLICE_END, max_side=480)


@pytest.fixture(scope="module")
def still_frame(video_dir):
    """Ten seconds of one frame of the real face (eyes open), with camera noise."""
    frame = videos.frame_at(VIDEO, 2.5, max_side=640)
    return videos.still_frame_video(video_dir / "still.mp4", frame, seconds=10.0, fps=15)


@pytest.fixture(scope="module", params=["small", "headshot"])
def moving_photo(video_dir, request):
    """A photo crossing the screen: the whole picture (small face), or a headshot crop whose
    eyes are as big as a citizen's at the kiosk."""
    photo = person_photo("barack_obama", 1)
    if request.param == "small":
        return videos.moving_photo_video(video_dir / "moving_small.mp4", photo)
    return videos.moving_photo_video(video_dir / "moving_headshot.mp4", photo, photo_height=340,
                                     face_crop=videos.headshot_box(photo))


def test_real_blinking_video_passes(real_slice):
    report = bench.analyse(real_slice)
    assert report["liveness_passed"] is True
    assert report["first_face_t"] == pytest.approx(1.5 - SLICE_START, abs=0.1)
    assert report["challenge"]["blink"]["start"] == pytest.approx(2.17 - SLICE_START, abs=0.1)
    # Four deliberate blinks start in this slice ("H" in Morse); all four are found.
    assert report["blink_count"] == 4


def test_real_video_passes_with_dropped_frames(real_slice):
    """A loop that only manages every third frame (10 fps) still sees the blink."""
    report = bench.analyse(real_slice, stride=3)
    assert report["liveness_passed"] is True


def test_blink_after_the_window_fails(real_slice):
    report = bench.analyse(real_slice, BlinkPolicy(window_s=0.5))
    assert report["blinks"], "the blinks are still reported"
    assert report["liveness_passed"] is False


def test_still_frame_never_passes(still_frame):
    report = bench.analyse(still_frame)
    assert report["frames_with_face"] > 100, "the face is seen, so the test is meaningful"
    assert report["liveness_passed"] is False
    assert report["blinks"] == []


def test_moving_photo_never_passes(moving_photo):
    report = bench.analyse(moving_photo)
    assert report["frames_with_face"] > 50
    assert report["liveness_passed"] is False
    assert report["blinks"] == []


def test_command_exit_code_follows_expectation(still_frame, capsys):
    assert bench.main([str(still_frame), "--expect", "spoof"]) == 0
    assert json.loads(capsys.readouterr().out)["liveness_passed"] is False
    assert bench.main([str(still_frame), "--expect", "live"]) == 1


def test_command_line_prints_blinks(real_slice):
    done = subprocess.run([sys.executable, "-m", "bench.liveness", str(real_slice),
                           "--expect", "live"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [round(b["start"], 1) for b in report["blinks"]][:1] == [1.2]


def test_missing_video_is_a_readable_error(tmp_path, capsys):
    assert bench.main([str(tmp_path / "nope.mp4")]) == 2
    assert "cannot open video" in capsys.readouterr().err


# Eye-openness series (EAR of the more open eye), as the detector sees them.

def _series(values, fps=30.0, start=0.0):
    return [(start + i / fps, v) for i, v in enumerate(values)]


def test_baseline_adapts_to_narrow_eyes():
    """Open eyes at EAR 0.20 (under the usual fixed 0.21 threshold): their blink is found,
    and open eyes are not mistaken for closed ones."""
    values = [0.20] * 15 + [0.12, 0.07, 0.07, 0.12] + [0.20] * 15
    blinks = blinks_in(_series(values))
    assert len(blinks) == 1
    assert blinks[0].depth == pytest.approx(0.35, abs=0.01)


def test_blink_seen_at_five_frames_per_second():
    values = [0.31] * 6 + [0.12] + [0.31] * 6
    assert len(blinks_in(_series(values, fps=5))) == 1


def test_one_frame_dip_is_not_a_blink():
    """A single 30 fps frame of jitter (33 ms) is shorter than any blink."""
    values = [0.30] * 15 + [0.18] + [0.30] * 15
    assert blinks_in(_series(values)) == []


def test_closure_across_a_gap_is_not_a_blink():
    """Eyes last seen closed, then open again after the face was lost for 2 s: unseen."""
    samples = _series([0.30] * 10 + [0.10]) + _series([0.30] * 10, start=2.4)
    assert blinks_in(samples) == []


def test_eyes_closed_for_long_is_not_a_blink():
    values = [0.30] * 10 + [0.10] * 60 + [0.30] * 10  # two seconds closed
    assert blinks_in(_series(values)) == []


def test_verdict_over_the_window():
    detector = BlinkDetector(BlinkPolicy(window_s=2.0), started_at=10.0)
    for t, v in _series([0.30] * 30, start=10.0):
        detector.add_openness(t, v)
    assert detector.verdict(11.5) is None
    assert detector.verdict(12.1) == "failed"
    late = BlinkDetector(BlinkPolicy(window_s=2.0), started_at=10.0)
    for t, v in _series([0.30] * 20 + [0.1] * 5 + [0.3] * 5, start=10.0):
        late.add_openness(t, v)
    assert late.verdict(11.0) == "passed"


def test_blink_before_the_challenge_does_not_count():
    """Frames from before the prompt teach the baseline, but a blink in them is not an answer."""
    detector = BlinkDetector(BlinkPolicy(window_s=3.0), started_at=2.0)
    for t, v in _series([0.30] * 20 + [0.1] * 5 + [0.3] * 40):   # blink ends at 0.83 s
        detector.add_openness(t, v)
    assert len(detector.blinks) == 1
    assert detector.verdict(5.1) == "failed"
