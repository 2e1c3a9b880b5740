"""The greeter's visit rules, fed frames directly (no server): when a track becomes an
unknown visitor, and that a citizen first seen at a bad angle is still greeted."""
import cv2
import pytest

import helpers
from helpers import person_encoding
from recognition.decision import Policy
from recognition.gallery import Gallery
from device.greeter import Greeter, GreeterSettings
from videos import background, face_patch, paste

pytestmark = pytest.mark.video

FPS = 10


def frames_of(schedule):
    """RGB frames at FPS: schedule is [(who, seconds)], who a person at one spot, None for
    nobody, or a tuple of (person, face_px, x, y) for several faces at once."""
    t = 0.0
    for who, seconds in schedule:
        for _ in range(round(seconds * FPS)):
            frame = background()
            for person, face_px, x, y in (who if isinstance(who, tuple) else
                                          [(who, 120, 260, 80)] if who else []):
                paste(frame, face_patch(person, face_px=face_px), x, y)
            yield t, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            t += 1 / FPS


def outcomes(greeter, schedule):
    out = []
    for t, rgb in frames_of(schedule):
        out += [(o.kind, o.track.citizen_key, round(t, 2)) for o in greeter.process(rgb, t)]
    return out


def greeter_of(gallery, settings=None):
    """A greeter on the test model's prior for this gallery (as a device before calibration)."""
    return Greeter(gallery, Policy.for_model(helpers.MODEL, len(gallery)), settings)


def gallery():
    g = Gallery(helpers.MODEL)
    g.add(1, person_encoding("barack_obama"))
    g.add(2, person_encoding("joe_biden"))
    return g


def test_stranger_becomes_unknown_only_after_a_second_and_is_never_named():
    result = outcomes(greeter_of(gallery()), [("kit_harington", 2.5)])
    kinds = [kind for kind, _, _ in result]
    assert kinds == ["unknown"]
    assert result[0][2] >= GreeterSettings().unknown_after_s


def test_citizen_first_unrecognised_is_still_greeted_on_the_same_track():
    # The same spot shows someone unrecognisable for 1.5 s (a turned head, here another
    # face), then the enrolled citizen: the track was an unknown visitor, now it is greeted.
    result = outcomes(greeter_of(gallery()), [("kit_harington", 1.5), ("barack_obama", 1.5)])
    assert [(kind, cid) for kind, cid, _ in result] == [("unknown", None), ("greeted", 1)]


@pytest.mark.parametrize("gap_s", [0.4, 0.0])
def test_someone_stepping_into_a_greeted_citizens_place_does_not_inherit_the_name(gap_s):
    """Obama greeted; he steps away and a stranger takes his spot, after a short gap (the track
    would have survived it) or at once. The name leaves with Obama's face: his track ends (the
    blink check and case file close with it) and the stranger is a visitor of their own."""
    schedule = [("barack_obama", 1.5), (None, gap_s), ("kit_harington", 2.5)]
    result = outcomes(greeter_of(gallery()), [step for step in schedule if step[1]])
    assert [(kind, cid) for kind, cid, _ in result] == [("greeted", 1), ("left", 1), ("unknown", None)]
    left_at = result[1][2]
    settings = GreeterSettings()
    assert left_at <= 1.5 + gap_s + settings.recheck_named_s * settings.changed_after + 1 / FPS


def test_a_greeted_citizen_standing_still_keeps_the_name():
    result = outcomes(greeter_of(gallery()), [("barack_obama", 4.0)])
    assert [(kind, cid) for kind, cid, _ in result] == [("greeted", 1)]


def test_only_the_face_at_the_screen_is_served():
    """A stranger stands at the kiosk (the larger face); an enrolled citizen waits behind. The
    citizen is not named over the stranger's head, only once they step up."""
    both = (("kit_harington", 150, 240, 60), ("barack_obama", 90, 480, 120))
    result = outcomes(greeter_of(gallery()), [(both, 2.5), ("barack_obama", 2.0)])
    assert [(kind, cid) for kind, cid, _ in result if kind != "left"] == [("unknown", None), ("greeted", 1)]
    assert [t for kind, _, t in result if kind == "greeted"][0] >= 2.5


def test_a_visitor_named_by_id_number_keeps_the_name_only_while_their_face_is_there():
    """Kit is not recognised and types his ID number (the server matched, as citizen 2 here);
    then someone else takes his place: the track ends, the newcomer is not served as him."""
    greeter = greeter_of(gallery())
    result = []
    for t, rgb in frames_of([("kit_harington", 1.5)]):
        result += [o.kind for o in greeter.process(rgb, t)]
    assert result == ["unknown"]
    [track] = greeter.tracks
    track.name_by_id_number(2, t)
    later = []
    for t2, rgb in frames_of([("kit_harington", 1.0), ("alex_lacamoire", 2.5)]):
        later += [(o.kind, o.track.citizen_key) for o in greeter.process(rgb, t + 0.1 + t2)]
    assert later[0] == ("left", 2)


def test_a_4k_camera_keeps_small_copies_for_the_blink_check():
    """30 kept 4K frames took 750 MB; the copies are 1920 wide and the eyes are still read."""
    import numpy as np
    from recognition.liveness import face_eyes
    greeter = greeter_of(gallery())
    frame = np.full((2160, 3840, 3), 180, np.uint8)
    patch = face_patch("barack_obama", face_px=700)
    frame[300:300 + patch.shape[0], 1500:1500 + patch.shape[1]] = patch
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    for i in range(3):
        greeter.process(rgb, i / FPS)
    [track] = greeter.tracks
    _, kept, location = track.frames[-1]
    assert kept.shape[:2] == (1080, 1920)
    assert face_eyes(kept, location) is not None


def test_a_greeting_keeps_its_best_frame_for_the_snapshot():
    """The server checks one frame 1:1; it is the track's closest to the citizen it named."""
    import numpy as np
    from recognition import engine
    greeter = greeter_of(gallery())
    for t, rgb in frames_of([("barack_obama", 1.0)]):
        greeter.process(rgb, t)
    [track] = greeter.tracks
    rgb, location = track.best_view
    best = min(min(h.distance for h in d.candidates if h.citizen_id == 1) for d, _, _ in track.views)
    assert helpers.MODEL.distance(helpers.MODEL.encoding(rgb, location), person_encoding("barack_obama")) \
        == pytest.approx(best, abs=1e-4)


def test_a_blink_counts_only_once_the_face_is_checked_again_after_it():
    """A photo is greeted; a live face swapped in with its eyes opening made a "blink" before
    the next regular check. The blink waits for a check after it (asked for at once)."""
    from types import SimpleNamespace
    from device.casefile import _confirmed
    from device.greeter import Track
    from recognition.liveness import Blink
    track = Track(1, (0, 10, 10, 0), 0.0, 0.0)
    track.verified_t = 1.0
    challenge = SimpleNamespace(track=track, blink=Blink(1.2, 1.4, 0.5))
    assert not _confirmed(challenge) and track.recheck_due
    track.verified_t = 1.5                        # the greeter found the same face at 1.5 s
    assert _confirmed(challenge)


def test_the_snapshot_of_a_visitor_named_nobody_has_her_eyes_open_not_the_latest_frame():
    """The clerk compares an unknown visitor's snapshot with photos: a frame mid-blink (the
    latest, here, and even the nearest to a citizen) is not the one kept."""
    from types import SimpleNamespace
    from device.greeter import clearest_view
    from helpers import her_frames
    from recognition.liveness import eyes_openness, face_eyes
    frames = her_frames()
    openness = [eyes_openness(*face_eyes(rgb, location)) for _, rgb, location in frames]
    shut = min(range(len(frames)), key=openness.__getitem__)
    recent = frames[max(0, shut - 9):shut + 1]          # the blink is the newest frame
    views = [(SimpleNamespace(distance=0.2 if i == len(recent) - 1 else 0.3), rgb, location)
             for i, (_, rgb, location) in enumerate(recent)]
    rgb, location = clearest_view(views)
    kept = eyes_openness(*face_eyes(rgb, location))
    assert rgb is not recent[-1][1] and kept > 1.5 * openness[shut]
    assert clearest_view([]) is None


def test_the_unknown_visitor_snapshot_is_the_sharp_frame_not_the_one_nearest_a_citizen():
    """A frame blurred by motion, though the device found it nearest some citizen, would show
    the clerk the face at its most like the guess, and least like itself."""
    import cv2
    from types import SimpleNamespace
    from device.greeter import clearest_view
    from helpers import her_frames
    _t, rgb, location = her_frames()[0]
    blurred = cv2.GaussianBlur(rgb, (0, 0), 2.5)
    views = [(SimpleNamespace(distance=0.1), blurred, location),
             (SimpleNamespace(distance=0.4), rgb, location)]
    kept, _location = clearest_view(views)
    assert kept is rgb
