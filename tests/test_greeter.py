"""The greeter's visit rules, fed frames directly (no server): when a track becomes an
unknown visitor, and that a citizen first seen at a bad angle is still greeted."""
import cv2
import pytest

from helpers import person_encoding
from recognition.gallery import Gallery
from device.greeter import Greeter, GreeterSettings
from videos import background, face_patch, paste

pytestmark = pytest.mark.video

FPS = 10


def frames_of(schedule):
    """RGB frames at FPS: schedule is [(person or None, seconds)], the face at one spot."""
    t = 0.0
    for person, seconds in schedule:
        for _ in range(round(seconds * FPS)):
            frame = background()
            if person:
                paste(frame, face_patch(person), 260, 80)
            yield t, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            t += 1 / FPS


def outcomes(greeter, schedule):
    out = []
    for t, rgb in frames_of(schedule):
        out += [(o.kind, o.track.citizen_key, round(t, 2)) for o in greeter.process(rgb, t)]
    return out


def gallery():
    g = Gallery()
    g.add(1, person_encoding("barack_obama"))
    g.add(2, person_encoding("joe_biden"))
    return g


def test_stranger_becomes_unknown_only_after_a_second_and_is_never_named():
    result = outcomes(Greeter(gallery()), [("kit_harington", 2.5)])
    kinds = [kind for kind, _, _ in result]
    assert kinds == ["unknown"]
    assert result[0][2] >= GreeterSettings().unknown_after_s


def test_citizen_first_unrecognised_is_still_greeted_on_the_same_track():
    # The same spot shows someone unrecognisable for 1.5 s (a turned head, here another
    # face), then the enrolled citizen: the track was an unknown visitor, now it is greeted.
    result = outcomes(Greeter(gallery()), [("kit_harington", 1.5), ("barack_obama", 1.5)])
    assert [(kind, cid) for kind, cid, _ in result] == [("unknown", None), ("greeted", 1)]
