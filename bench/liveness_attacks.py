"""Blink evidence against still-photo attacks: `python -m bench.liveness_attacks [--no-old]`.

Prints JSON. Real: every blink of the real videos (tests/data/video, and ../shared/video when
there) made into the evidence a kiosk sends (device/evidence.py: two open crops before, the
closed one, two after), every frame and every second frame (a slower loop), cropped from the
640 px frame and, where the video is larger, from the full frame; the share of them
server/evidence.py accepts. Attacks: for each still photo (tests/data/faces/people, and
open-eyed frames of the video as a photo of her), evidence made only from it, as a stolen
token could: shifted, re-encoded, brighter or darker, rotated, rescaled copies, and a copy
squeezed upright (0.5-0.8) as the "closed" crop, or the open ones stretched; how many of
the stills tried each kind is accepted. Beside it, the checks before this change in the
same run (a 32x32 grey mean difference of 0.15 for "same picture", no shape check).

The 1:1 comparison with the citizen is not run: the attacker's photo is of the citizen.
Targets: real evidence accepted >= 95 %; no attack accepted.
"""
import argparse
import glob
import hashlib
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from device.evidence import AFTER, Evidence, _crop
from recognition import engine, liveness, models
from recognition.images import bgr_to_rgb, jpeg_bytes, load_image, scaled_to_fit
from server import evidence

ROOT = Path(__file__).resolve().parent.parent
VIDEOS = [ROOT / "tests/data/video/blinking_clip.mp4", ROOT.parent / "shared/video/blinking_on_purpose.mp4"]
STILLS = [ROOT / "tests/data/faces/people"]
VIDEO_STILL_TIMES = (2.5, 6.0, 9.0)      # open-eyed moments of the test clip, as photos of her
TIMES = (0.0, 0.033, 0.2, 0.4, 0.433)    # two open crops, the closed one, two open after
OLD_SAME_PICTURE = 0.15
TRACK_GAP_S = 1.0


# --- real evidence ------------------------------------------------------------------------

def face_samples(path):
    """(t, eyes, crop of the 640 px frame, crop of the full frame or None) per frame with a
    whole face, as the kiosk's camera loop sees it; (t, None) without one."""
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    index, out = 0, []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        out.append((index / fps, _frame_sample(bgr_to_rgb(frame))))
        index += 1
    capture.release()
    return out


def _frame_sample(rgb):
    small, scale = scaled_to_fit(rgb, 640)
    found = engine.detect_faces(small, 640, upsample=0, clip=False)
    if not found or found[0] != engine.clip_location(found[0], small.shape):
        return None
    location = found[0]
    full = tuple(round(v / scale) for v in location)
    return liveness.face_eyes(small, location), _crop(small, location), \
        _crop(rgb, full) if scale < 1 else None


def real_evidence(samples, stride=1, full=False):
    """The evidence of every blink in the samples, fed as the blink challenge feeds it."""
    sets = []
    for track in _tracks(samples[::stride]):
        detector, kept = liveness.BlinkDetector(), Evidence(track[0][0])
        for t, (eyes, small, large) in track:
            blink = detector.update(t, eyes)
            _add(kept, t, liveness.eyes_openness(*eyes), large if full else small, blink)
            if kept._blink is not None and len(kept._blink[2]) >= AFTER:
                sets.append([(c["t"], c["jpeg"]) for c in kept.payload()])
                kept = Evidence(track[0][0])
    return [s for s in sets if s]


def _add(kept, t, openness, crop, blink):
    """Evidence.add with the crop already cut (the samples hold crops, not frames)."""
    height, width = crop.shape[:2]
    kept.add(t, openness, crop, (0, width, height, 0), blink)


def _tracks(samples):
    tracks, last = [], None
    for t, sample in samples:
        if sample is None:
            continue
        if last is None or t - last > TRACK_GAP_S:
            tracks.append([])
        tracks[-1].append((t, sample))
        last = t
    return tracks


# --- attacks from one still ---------------------------------------------------------------

def stills():
    """(name, rgb, face location) of each still photo with one face, each picture once."""
    seen, out = set(), []
    for folder in STILLS:
        for path in sorted(glob.glob(str(folder / "*" / "*.jpg"))):
            digest = hashlib.sha256(Path(path).read_bytes()).digest()
            if digest not in seen:
                seen.add(digest)
                out.append((Path(path).parent.name + "/" + Path(path).name, load_image(path)))
    for t in VIDEO_STILL_TIMES:
        capture = cv2.VideoCapture(str(VIDEOS[0]))
        capture.set(cv2.CAP_PROP_POS_MSEC, t * 1000)
        ok, frame = capture.read()
        capture.release()
        if ok:
            out.append((f"video@{t}s", bgr_to_rgb(frame)))
    return [(name, rgb, found[0]) for name, rgb in out
            for found in [engine.detect_faces(rgb, 640, upsample=1)] if len(found) == 1]


def attacks(rgb, location, rng):
    """{kind: five crops made from one still} (times TIMES)."""
    still = _crop(rgb, location)       # the face as the kiosk crops it

    def crop(dy=0, dx=0):
        return _moved(still, dy, dx)

    offsets = iter(rng.permutation([(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                                    if (dy, dx) != (0, 0)]))

    def shifted():      # each copy moved differently, within 2 px
        return crop(*(int(v) for v in next(offsets)))

    kinds = {
        "shifted": [jpeg_bytes(shifted()) for _ in TIMES],
        "re-encoded": [jpeg_bytes(crop(), q) for q in (95, 85, 75, 65, 55)],
        "brightness": [jpeg_bytes(_tone(crop(), a, b), q) for a, b, q in
                       ((1, 0, 90), (1.1, 8, 80), (0.9, -10, 85), (1.2, -20, 70), (0.8, 20, 92))],
        "rotated": [jpeg_bytes(_rotated(crop(), d)) for d in (0, 1.5, -1.5, 3, -3)],
        "rescaled": [jpeg_bytes(_resized(crop(), f, f)) for f in (1.0, 0.9, 0.8, 1.1, 1.2)],
        "stretched_open": [jpeg_bytes(_resized(shifted(), 1, 1 / 0.65)) for _ in range(2)]
        + [jpeg_bytes(crop())] + [jpeg_bytes(_resized(shifted(), 1, 1 / 0.65)) for _ in range(2)],
    }
    opens = [jpeg_bytes(shifted()) for _ in range(4)]
    for s in (0.5, 0.6, 0.7, 0.8):
        kinds[f"squeezed_{s}"] = opens[:2] + [jpeg_bytes(_resized(crop(), 1, s))] + opens[2:]
    kinds["combined"] = [
        jpeg_bytes(_tone(_rotated(crop(1, -1), 1), 1.1, 5), 85), jpeg_bytes(_resized(crop(-2, 2), 0.95, 0.95), 75),
        jpeg_bytes(_tone(_rotated(_resized(crop(1, 1), 1, 0.6), 1), 1.05, 3), 85),
        jpeg_bytes(_tone(crop(2, 0), 0.9, -5), 95), jpeg_bytes(_rotated(crop(0, 2), -1), 80)]
    return {kind: list(zip(TIMES, crops)) for kind, crops in kinds.items()}


def _moved(rgb, dy, dx):
    height, width = rgb.shape[:2]
    return cv2.warpAffine(rgb, np.float32([[1, 0, dx], [0, 1, dy]]), (width, height),
                          borderMode=cv2.BORDER_REPLICATE)


def _tone(rgb, gain, offset):
    return np.clip(rgb.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def _rotated(rgb, degrees):
    height, width = rgb.shape[:2]
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(rgb, turn, (width, height), borderMode=cv2.BORDER_REPLICATE)


def _resized(rgb, fx, fy):
    height, width = rgb.shape[:2]
    return cv2.resize(rgb, (round(width * fx), max(1, round(height * fy))), interpolation=cv2.INTER_AREA)


# --- the checks, new and old --------------------------------------------------------------

def verdict(crops, model):
    """None when server/evidence.py accepts the crops, else its reason."""
    try:
        evidence.check(crops, crops[-1][0] + 1, model)
    except evidence.EvidenceRefused as e:
        return e.reason
    return None


def old_verdict(crops):
    """The checks before the shape check and the aligned signatures, for comparison."""
    images = [load_image(data) for _, data in crops]
    grey = [cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (32, 32), interpolation=cv2.INTER_AREA)
            .astype(np.float32) for rgb in images]
    if any(np.abs(a - b).mean() < OLD_SAME_PICTURE for i, a in enumerate(grey) for b in grey[i + 1:]):
        return "two crops are the same picture"
    samples = []
    for (t, _), rgb in zip(crops, images):
        found = engine.detect_faces(rgb, 640, upsample=0) or engine.detect_faces(rgb, 640, upsample=1)
        if len(found) != 1:
            return "a crop does not show exactly one face"
        samples.append((t, liveness.eyes_openness(*liveness.face_eyes(rgb, found[0]))))
    return liveness.blink_across(samples)


def tally(sets, judge):
    refusals = {}
    for crops in sets:
        reason = judge(crops)
        if reason is not None:
            key = reason.split(":")[0]
            refusals[key] = refusals.get(key, 0) + 1
    return {"tried": len(sets), "accepted": len(sets) - sum(refusals.values()), "refused_by": refusals}


def run(with_old=True):
    started = time.perf_counter()
    model = models.get(models.DEFAULT)
    real = {}
    for path in VIDEOS:
        if not path.exists():
            continue
        samples = face_samples(path)
        variants = [(1, False), (2, False)] + ([(1, True), (2, True)] if any(
            s and s[2] is not None for _, s in samples) else [])
        for stride, full in variants:
            real[f"{path.name} stride {stride}{' full-size' if full else ''}"] = real_evidence(samples, stride, full)
    report = {"thresholds": {"same_picture": evidence.SAME_PICTURE,
                             "max_shape_residual": evidence.MAX_SHAPE_RESIDUAL,
                             "max_shape_stretch": evidence.MAX_SHAPE_STRETCH},
              "real": {}, "attacks": {}}
    every = [crops for sets in real.values() for crops in sets]
    for name, sets in [("all", every)] + list(real.items()):
        report["real"][name] = _both(sets, model, with_old)
    rng = np.random.default_rng(0)
    by_kind = {}
    photos = stills()
    for _name, rgb, location in photos:
        for kind, crops in attacks(rgb, location, rng).items():
            by_kind.setdefault(kind, []).append(crops)
    report["stills"] = len(photos)
    for kind, sets in by_kind.items():
        report["attacks"][kind] = _both(sets, model, with_old)
    report["attacks_accepted"] = sum(r["accepted"] for r in report["attacks"].values())
    report["real_accepted_share"] = report["real"]["all"]["share"]
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def _both(sets, model, with_old):
    result = tally(sets, lambda crops: verdict(crops, model))
    result["share"] = round(result["accepted"] / result["tried"], 3) if result["tried"] else None
    if with_old:
        result["old_accepted"] = tally(sets, old_verdict)["accepted"]
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.liveness_attacks", description=__doc__.split("\n")[0])
    parser.add_argument("--no-old", action="store_true", help="skip the checks before this change")
    args = parser.parse_args(argv)
    print(json.dumps(run(not args.no_old), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
