"""The server looks at the blink itself: the evidence a device sends with "liveness passed".

A device's word that the visitor blinked opened case files for a stolen token holding a
photo. So a pass carries face crops of the visit from before, during and after the blink,
with their times (device/evidence.py). The crops are the attacker's to choose, so a pass
counts only when all of these hold:

  - 3 to 12 crops, each a JPEG the server can read, no two the same picture: the same bytes,
    or aligned, brightness-normalised face signatures all but equal (a copy re-encoded or
    made brighter; see SAME_PICTURE for what this can and cannot tell);
  - their times rise, start at or after the visit began and end by now (the server's clock,
    against the session's start as the server bounded it), within a blink challenge's span;
  - each shows one face whose eyes the server reads itself (dlib's 68 landmarks), and the
    face keeps its shape across them: its landmarks but the eyelids' (jaw, brows, nose,
    mouth) fit each other's by a rotation, scale and shift. A copy of a photo squeezed
    upright reads as "eyes closed" by the eyelid gap, and is refused here;
  - across them the eyes close and open again by the device's own rule (liveness.blink_across);
  - each is the claimed citizen's face, 1:1 within the registry's calibrated distance (for a
    visitor who types an ID number, checked when they do: server/identify.py);
  - for a greeting, the crops are not the same pictures as a pass of another session of the
    citizen in the last REPLAY_WINDOW_DAYS (server/casefile.py keeps their signatures).

This raises a stolen token's attack from a photo of the citizen to a video of the citizen
blinking (or a picture with eyes open and one with eyes closed): docs/security.md, with the
attacks measured by bench/liveness_attacks.py.

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
# Two crops are one picture when their face signatures (SIGNATURE_SIDE² grey, aligned on
# the eye corners and nose tip, mean 0 and deviation 1) differ by less than this on average,
# at their best shift of up to SIGNATURE_SHIFT cells. Real frames 33 ms apart differed by
# 0.016 at least (94 real blink evidence sets, bench/liveness_attacks.py); a copy re-encoded
# at the same quality or made brighter differs by ~0.00x. Copies shifted, rotated or
# re-encoded at another quality differ by 0.03-0.09, *more* than real consecutive frames:
# no threshold on pictures tells them apart, so this catches plain copies only, and the
# blink itself (shape, eyelids) is what a still photo cannot fake.
# The device reads a blink only on eyes at least min_eye_px wide; the landmarks of its JPEG
# crop differ from its frame's by a pixel or so, and a pass of eyes just at the device's limit
# was refused for one crop in four with camera noise (bench/load.py).
MIN_EYE_PX = 0.9 * liveness.BlinkPolicy.min_eye_px
SAME_PICTURE = 0.010
SIGNATURE_SIDE, SIGNATURE_SHIFT = 32, 2
# ... and a copy in place: the crops' 32x32 grey, less their mean brightness, differing by
# less than this many grey levels on average. Real frames: 0.139 at least; one crop
# re-encoded at 95 and 90, or made brighter: from 0.03. (Landmarks move by a pixel on a
# re-encode, so the aligned signature above misses what this catches.)
PLAIN_COPY = 0.08
# The face's shape across the crops, by its landmarks but the eyes' (68-point numbering):
# once fitted by rotation, scale and shift, the rest as a share of the eye-corner distance
# (MAX_SHAPE_RESIDUAL), and how much an affine fit stretches one direction over the other
# (MAX_SHAPE_STRETCH: 1 - its minor/major singular value). Measured on 94 real blink sets:
# at most 0.027 and 0.018; copies of 15 photos squeezed to 0.6-0.8 of their height: at least
# 0.071 and 0.057 (dlib's shape model follows a squeeze only part of the way).
MAX_SHAPE_RESIDUAL = 0.045
MAX_SHAPE_STRETCH = 0.035
SHAPE_POINTS = np.r_[0:36, 48:68]       # jaw, brows, nose, mouth: not the eyelids (36-47)
# A pass's crops are kept (as signatures) this long, to refuse them for another session of
# the citizen: a replay is worth most within days of the token's theft; a month bounds both
# the rows read per pass (one citizen's recent passes) and what the registry keeps of faces.
REPLAY_WINDOW_DAYS = 30
# ... and every one of them is compared, up to REPLAY_PASSES: a citizen passes a handful of
# times a month; more than that is refused (see a clerk) rather than compared with some only,
# or 31 captured blinks would take turns for ever. 60 passes of 5 crops: ~60 ms of numpy.
REPLAY_PASSES = 60


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
    """(the template of each crop, their same-picture signatures), once the crops show a live
    blink of one face (the 1:1 comparison with a citizen, and with the citizen's earlier
    passes, are the caller's, who knows which citizen); EvidenceRefused, or
    facecheck.FaceBusy when the face-work pool did not get to them in time."""
    _check_times([t for t, _ in crops], visit_age_s)
    looks = in_pool_each(_look, [(data, model.id) for _, data in crops])
    for look in looks:
        if look.unreadable:
            raise EvidenceRefused(look.unreadable)
    _check_bytes([data for _, data in crops])
    for look in looks:
        if look.no_face:
            raise EvidenceRefused(look.no_face)
    signatures = [look.signature for look in looks]
    _check_distinct(signatures, [look.grey for look in looks])
    _check_shape([look.points for look in looks])
    reason = liveness.blink_across([(t, look.openness) for (t, _), look in zip(crops, looks)])
    if reason:
        raise EvidenceRefused(f"the crops show no blink: {reason}")
    if any(look.encoding is None for look in looks):
        raise EvidenceRefused("a crop's face cannot be aligned")
    return [look.encoding for look in looks], signatures


class _Look(NamedTuple):
    """What a face worker saw in one crop; the first refusal (by check()'s order) is kept."""
    unreadable: str = None      # why the crop is no picture the server reads
    no_face: str = None         # why it shows no face the server can read the eyes of
    signature: object = None    # the aligned face (signature())
    grey: object = None         # the whole crop, 32x32 grey less its mean
    points: object = None       # its 68 landmarks, a 68x2 array
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
    try:
        location, points = _face(rgb)
    except EvidenceRefused as e:
        return _Look(no_face=e.reason)
    encoding = models.get(model_id).encodings(rgb, [location])[0]
    openness = liveness.eyes_openness(points[36:42], points[42:48])
    return _Look(signature=signature(rgb, points), grey=_grey(rgb), points=points,
                 openness=openness, encoding=encoding)


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


def _check_bytes(blobs):
    if len({hashlib.sha256(b).digest() for b in blobs}) < len(blobs):
        raise EvidenceRefused("the same crop is sent twice")


def _check_distinct(signatures, greys):
    apart = picture_distances(signatures, signatures)
    for i in range(len(signatures)):
        for j in range(i + 1, len(signatures)):
            if apart[i, j] < SAME_PICTURE or np.abs(greys[i] - greys[j]).mean() < PLAIN_COPY:
                raise EvidenceRefused("two crops are the same picture")


def _grey(rgb):
    import cv2
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grid = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    return grid - grid.mean()


def _check_shape(points):
    """Refuse crops whose faces are not one face's shape (see MAX_SHAPE_RESIDUAL): every pair
    is compared, so no crop in the middle of a squeeze and a stretch passes for both."""
    for i in range(len(points)):
        for j in range(i + 1, len(points)):
            residual, stretch = shape_change(points[i], points[j])
            if residual > MAX_SHAPE_RESIDUAL or stretch > MAX_SHAPE_STRETCH:
                raise EvidenceRefused("the face changes shape between crops")


def shape_change(a, b):
    """(residual, stretch) between two faces' 68 landmarks, by SHAPE_POINTS: the root-mean-square distance
    left once b is fitted to a by rotation, scale and shift, as a share of the distance
    between a's eye centres by their corners (which a blink does not move); and 1 - minor/major singular value of the best affine fit (0: no stretch)."""
    span = np.linalg.norm(a[[42, 45]].mean(axis=0) - a[[36, 39]].mean(axis=0))
    a, b = a[SHAPE_POINTS], b[SHAPE_POINTS]
    residual = np.sqrt(((_similarity_fit(b, a) - a) ** 2).sum(axis=1).mean()) / span
    design = np.c_[b, np.ones(len(b))]
    affine = np.linalg.lstsq(design, a, rcond=None)[0][:2]
    singular = np.linalg.svd(affine, compute_uv=False)
    return float(residual), float(1 - singular[1] / singular[0])


def _similarity_fit(src, dst):
    """src moved onto dst by the rotation, scale and shift that fit it best (least squares)."""
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - src_mean, dst - dst_mean
    u, singular, vt = np.linalg.svd(d.T @ s)
    flip = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ flip @ vt
    scale = (singular * np.diag(flip)).sum() / (s ** 2).sum()
    return scale * s @ rotation.T + dst_mean


def signature(rgb, points):
    """The face as a SIGNATURE_SIDE² grey grid, aligned by rotation, scale and shift on its eye
    corners and nose tip (which a blink does not move), with mean 0 and deviation 1: a copy
    moved, scaled or made brighter gives the same grid."""
    import cv2
    side = SIGNATURE_SIDE
    anchors = np.float32([points[[36, 39]].mean(axis=0), points[[42, 45]].mean(axis=0), points[33]])
    places = np.float32([[0.3 * side, 0.38 * side], [0.7 * side, 0.38 * side], [0.5 * side, 0.62 * side]])
    warp, _ = cv2.estimateAffinePartial2D(anchors, places)
    if warp is None:
        warp = cv2.getAffineTransform(anchors, places)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return _normalised(cv2.warpAffine(grey, warp, (side, side), flags=cv2.INTER_AREA))


def picture_distance(a, b):
    """Mean difference of two signatures at b's best shift of up to SIGNATURE_SHIFT cells
    (their inner parts, each normalised again); under SAME_PICTURE they are one picture."""
    return float(picture_distances([a], [b])[0, 0])


def picture_distances(olds, news):
    """picture_distance of every old signature to every new one, as an (olds, news) array.
    All at once: a citizen's month of passes is a few hundred signatures, and one pair at a
    time in Python took a second for 180 of them, under the lock every pass takes."""
    m, side = SIGNATURE_SHIFT, SIGNATURE_SIDE
    olds = _normalised(np.asarray(olds, np.float32)[:, m:side - m, m:side - m])
    news = np.asarray(news, np.float32)
    shifted = _normalised(np.stack([news[:, m + dy:side - m + dy, m + dx:side - m + dx]
                                    for dy in range(-m, m + 1) for dx in range(-m, m + 1)], axis=1))
    out = np.empty((len(olds), len(news)), np.float32)
    step = max(1, 2_000_000 // max(1, shifted.size))    # a few MB of differences at a time
    for i in range(0, len(olds), step):
        chunk = olds[i:i + step, None, None]
        out[i:i + step] = np.abs(chunk - shifted[None]).mean(axis=(-2, -1)).min(axis=-1)
    return out


def same_picture(a, b):
    return picture_distance(a, b) < SAME_PICTURE


def _normalised(grid):
    """Each grid (the last two axes) less its mean, over its deviation."""
    grid = grid - grid.mean(axis=(-2, -1), keepdims=True)
    return grid / (grid.std(axis=(-2, -1), keepdims=True) + 1e-6)


def signatures_blob(signatures):
    """The signatures of a pass as stored (float16: 2 KB a crop)."""
    return np.stack(signatures).astype(np.float16).tobytes()


def seen_before(signatures, blobs):
    """Whether any of a pass's signatures is the same picture as one stored in the blobs
    (signatures_blob's, of earlier passes)."""
    side = SIGNATURE_SIDE
    if not blobs:
        return False
    earlier = np.concatenate([np.frombuffer(bytes(blob), dtype=np.float16) for blob in blobs])
    earlier = earlier.astype(np.float32).reshape(-1, side, side)
    return bool((picture_distances(earlier, signatures) < SAME_PICTURE).any())


def _face(rgb):
    """(location, 68 landmarks as a 68x2 array) of the crop's one face, or EvidenceRefused."""
    found = engine.detect_faces(rgb, 640, upsample=0) or engine.detect_faces(rgb, 640, upsample=1)
    if len(found) != 1:
        raise EvidenceRefused("a crop does not show exactly one face")
    shape = engine.face_landmarks(rgb, found[0], model="large")
    points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
    if min(liveness.eye_width(points[36:42]), liveness.eye_width(points[42:48])) < MIN_EYE_PX:
        raise EvidenceRefused("a crop's eyes are too small to read")
    return found[0], points
