"""The server looks at the blink itself: the evidence a device sends with "liveness passed".

A device's word that the visitor blinked opened case files for a stolen token holding a
photo. So a pass carries face crops of the visit from before, during and after the blink,
with their times (device/evidence.py), and counts only when all of these hold:

  - 3 to 12 crops, each a JPEG the server can read, no two the same picture (the same bytes,
    or a copy re-encoded: their 32x32 grey signatures all but equal);
  - their times rise, start at or after the visit began and end by now (the server's clock,
    against the session's start as the server bounded it), within a blink challenge's span;
  - each shows one face whose eyes the server reads itself (dlib's 68 landmarks), and across
    them the eyes close and open again by the device's own rule (liveness.blink_across);
  - each is the claimed citizen's face, 1:1 within the registry's calibrated distance (for a
    visitor who types an ID number, checked when they do: server/identify.py).

This raises a stolen token's attack from a photo of the citizen to a video of the citizen
blinking (or a picture with eyes open and one with eyes closed): docs/security.md.

The crops are looked at in the face-work pool (server/facecheck.py): about 0.1 s of dlib and
network work that would otherwise hold the interpreter every other request of the process
needs.
"""
import base64
import hashlib
from typing import NamedTuple

import numpy as np

from recognition import PhotoRejected, engine, liveness, models
from recognition.images import load_image

from .facecheck import in_pool_each

MIN_CROPS, MAX_CROPS = 3, 12
MAX_CROP_BYTES = 300 * 1024
MAX_CROP_PIXELS = 1_000_000
MAX_SPAN_S = 30.0          # two blink windows and the lookback before them
CLOCK_SLACK_S = 2.0        # a device's clock may run ahead of the server's by this much
SAME_PICTURE = 0.15        # mean grey difference (of 255) under which two crops are one image


class EvidenceRefused(ValueError):
    """The evidence does not show a live blink of the citizen; `reason` says which check."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def parse(value):
    """[(t, jpeg bytes)] from the request's "evidence", or EvidenceRefused."""
    if not isinstance(value, list) or not MIN_CROPS <= len(value) <= MAX_CROPS:
        raise EvidenceRefused(f"send {MIN_CROPS} to {MAX_CROPS} face crops of the blink as evidence")
    crops = []
    for entry in value:
        t = entry.get("t") if isinstance(entry, dict) else None
        data = entry.get("jpeg") if isinstance(entry, dict) else None
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1e6:
            raise EvidenceRefused("each crop needs its time, seconds since the visit began")
        if not isinstance(data, str) or len(data) > MAX_CROP_BYTES * 4 // 3 + 4:
            raise EvidenceRefused("each crop is a base64 JPEG of at most 300 KB")
        try:
            crops.append((float(t), base64.b64decode(data, validate=True)))
        except ValueError:
            raise EvidenceRefused("each crop is a base64 JPEG of at most 300 KB")
    return crops


def check(crops, visit_age_s, model):
    """The template of each crop, once the crops show a live blink of one face (the 1:1
    comparison with a citizen is the caller's, who knows which citizen); EvidenceRefused,
    or facecheck.FaceBusy when the face-work pool did not get to them in time."""
    _check_times([t for t, _ in crops], visit_age_s)
    looks = in_pool_each(_look, [(data, model.id) for _, data in crops])
    for look in looks:
        if look.unreadable:
            raise EvidenceRefused(look.unreadable)
    _check_distinct([data for _, data in crops], [look.signature for look in looks])
    for look in looks:
        if look.no_face:
            raise EvidenceRefused(look.no_face)
    reason = liveness.blink_across([(t, look.openness) for (t, _), look in zip(crops, looks)])
    if reason:
        raise EvidenceRefused(f"the crops show no blink: {reason}")
    if any(look.encoding is None for look in looks):
        raise EvidenceRefused("a crop's face cannot be aligned")
    return [look.encoding for look in looks]


class _Look(NamedTuple):
    """What a face worker saw in one crop; the first refusal (by check()'s order) is kept."""
    unreadable: str = None      # why the crop is no picture the server reads
    signature: object = None
    no_face: str = None         # why it shows no face the server can read the eyes of
    openness: float = None
    encoding: object = None


def _look(data, model_id):
    """One crop looked at in a face worker (the crops of a pass are spread over the pool's
    workers: a pass waits for the slowest crop, not for five in a row). Every crop is looked
    at in full; check() then applies the checks in order, so the answer is the one a look
    at the crops one after another gave."""
    try:
        rgb = _image(data)
    except EvidenceRefused as e:
        return _Look(unreadable=e.reason)
    signature = _signature(rgb)
    try:
        location, openness = _face(rgb)
    except EvidenceRefused as e:
        return _Look(signature=signature, no_face=e.reason)
    encoding = models.get(model_id).encodings(rgb, [location])[0]
    return _Look(signature=signature, openness=openness, encoding=encoding)


def farthest(encodings, citizen_templates, model):
    """The largest of each crop's distance to the citizen's nearest template (inf: none)."""
    if not citizen_templates:
        return float("inf")
    return max(float(model.distances(citizen_templates, e).min()) for e in encodings)


def _check_times(times, visit_age_s):
    if any(b <= a for a, b in zip(times, times[1:])):
        raise EvidenceRefused("the crops' times must rise")
    if times[-1] > visit_age_s + CLOCK_SLACK_S:
        raise EvidenceRefused("the crops are not of this visit (later than now)")
    if times[-1] - times[0] > MAX_SPAN_S:
        raise EvidenceRefused("the crops span more than one blink challenge")


def _image(data):
    if len(data) > MAX_CROP_BYTES or not data.startswith(b"\xff\xd8\xff"):
        raise EvidenceRefused("a crop is not a JPEG of at most 300 KB")
    try:
        return load_image(data, max_bytes=MAX_CROP_BYTES, max_pixels=MAX_CROP_PIXELS)
    except PhotoRejected as e:
        raise EvidenceRefused(f"a crop cannot be read: {e.reason}")


def _check_distinct(blobs, signatures):
    if len({hashlib.sha256(b).digest() for b in blobs}) < len(blobs):
        raise EvidenceRefused("the same crop is sent twice")
    for i in range(len(signatures)):
        for j in range(i + 1, len(signatures)):
            if np.abs(signatures[i] - signatures[j]).mean() < SAME_PICTURE:
                raise EvidenceRefused("two crops are the same picture")


def _signature(rgb):
    import cv2
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)


def _face(rgb):
    """(location, eye openness) of the crop's one face, or EvidenceRefused."""
    found = engine.detect_faces(rgb, 640, upsample=0) or engine.detect_faces(rgb, 640, upsample=1)
    if len(found) != 1:
        raise EvidenceRefused("a crop does not show exactly one face")
    left, right = liveness.face_eyes(rgb, found[0])
    if min(liveness.eye_width(left), liveness.eye_width(right)) < liveness.BlinkPolicy.min_eye_px:
        raise EvidenceRefused("a crop's eyes are too small to read")
    return found[0], liveness.eyes_openness(left, right)
