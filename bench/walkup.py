"""Walk-up visits made from photos: time to greet and wrong names, evidence rule vs agreement.

    python -m bench.walkup DATASET_DIR [--visits N] [--workers N] [--seed S] [--video VIDEO]
                           [--enrol-photos K]

DATASET_DIR holds <person>/<images> (or group folders of them, as bench.accuracy). The
registry is built as bench.accuracy does (every 5th person not enrolled, the others from
their first photo) and its threshold chosen from the enrolled photos alone, as the
registry does (recognition.calibration). A walk-up is a 640x360 clip at the rate a device
encodes frames (5 per second, ~0.2 s per dlib encoding here): the visitor's photo (a
*different* photo from the enrolled one; for strangers, any of theirs) starts small at one
side, moves and grows towards the camera, with sensor noise and changing brightness. Each
frame goes through the device path (detect on the frame, encode the largest face, decide)
and the two track rules are run on the same frames:
  agreement  the shipped rule before: min_frames single-frame decisions in a row agree;
  evidence   agreement, or the mean template of the track's frames (TrackVotes.evidence).
Prints JSON: per rule, visits greeted by the right name within 2 s, median time to greet,
wrong names, strangers named. Frame encodings are cached under bench/_work.

--video adds real footage: the person in VIDEO is enrolled from its last frame with a face
(among the dataset's enrolled citizens, so she has lookalike competition), and every 8 s of
the video is a 3 s visit sampled at the same 5 frames/s.
"""
import argparse
import json
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np

from bench import accuracy, encoding_cache
from recognition import engine, images
from recognition.decision import Policy, TrackVotes, decide

FPS = 5.0            # encoded frames per second on a device (dlib's encoder ~0.2 s a face)
SECONDS = 3.0        # length of a walk-up clip
WITHIN_S = 2.0       # the product's promise: greeted within two seconds of appearing
SIZE = (640, 360)


def walkup_frames(rgb, seed):
    """The frames of one walk-up: the photo grows from ~35 % to ~95 % of the frame height
    while moving sideways, with noise and brightness changes (deterministic per seed)."""
    rng = np.random.default_rng(seed)
    width, height = SIZE
    frames, count = [], int(SECONDS * FPS)
    start_x, end_x = rng.uniform(0.1, 0.3) * width, rng.uniform(0.35, 0.55) * width
    for i in range(count):
        progress = i / max(1, count - 1)
        side = int(height * (0.35 + 0.6 * progress))
        photo = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA)
        canvas = np.full((height, width, 3), 90, np.uint8)
        x = int(start_x + (end_x - start_x) * progress)
        y = max(0, (height - side) // 2 + int(rng.integers(-8, 9)))
        x, y = min(x, width - side), min(y, height - side)
        canvas[y:y + side, x:x + side] = photo
        gain = rng.uniform(0.8, 1.15)
        noisy = canvas.astype(np.float32) * gain + rng.normal(0, 6, canvas.shape)
        frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return frames


def _encode_walkup(args):
    """Encodings of the largest face in each frame (None where no face was found)."""
    path, seed = args
    rgb = images.load_image(path)
    out = []
    for frame in walkup_frames(rgb, seed):
        faces = engine.detect_faces(frame, 480, 0) or engine.detect_faces(frame, 480, 1)
        if not faces:
            out.append(None)
            continue
        largest = max(faces, key=lambda f: engine.face_height(f) * engine.face_width(f))
        out.append(engine.face_encoding(frame, largest))
    return out


def visits(enrol, genuine, impostor, count, seed):
    """(expected person or None, photo) for up to `count` genuine and count//2 stranger visits."""
    rng = np.random.default_rng(seed)
    seen, genuine_visits = set(), []
    for person, path in genuine:          # one visit per enrolled person, their second photo
        if person not in seen:
            seen.add(person)
            genuine_visits.append((person, path))
    strangers, seen = [], set()
    for person, path in impostor:
        if person not in seen:
            seen.add(person)
            strangers.append((None, path))
    pick = lambda items, n: [items[i] for i in sorted(rng.permutation(len(items))[:n])]
    return pick(genuine_visits, count) + pick(strangers, max(1, count // 2))


def run_rule(gallery, ids, plan, encodings, policy, rule):
    """Counts for one track rule over the walk-ups."""
    counts = dict(visits=0, strangers=0, greeted_within_2s=0, greeted_late=0, wrong_name=0,
                  strangers_named=0, times=[])
    for (person, _), frames in zip(plan, encodings):
        expected = ids.get(person) if person else None
        votes, named, at = TrackVotes(), None, None
        for i, encoding in enumerate(frames):
            if encoding is None:
                continue
            votes.add(decide(gallery, encoding, policy), encoding)
            verdict, decision = votes.verdict(policy, gallery if rule == "evidence" else None)
            if verdict == "named":
                named, at = decision.citizen_id, (i + 1) / FPS
                break
        if expected is None:
            counts["strangers"] += 1
            counts["strangers_named"] += named is not None
            continue
        counts["visits"] += 1
        if named is None:
            continue
        if named != expected:
            counts["wrong_name"] += 1
        elif at <= WITHIN_S:
            counts["greeted_within_2s"] += 1
            counts["times"].append(at)
        else:
            counts["greeted_late"] += 1
    times = counts.pop("times")
    counts["median_time_to_greet_s"] = statistics.median(times) if times else None
    counts["share_greeted_within_2s"] = round(counts["greeted_within_2s"] / counts["visits"], 4) \
        if counts["visits"] else None
    return counts


def run(root, count, workers, seed, threshold=None, enrol_photos=1):
    enrol, genuine, impostor = accuracy.dataset_plan(root, enrol_photos)
    enrolled, _ = accuracy.encode_all(enrol, [], "small", 1, workers)
    gallery, ids = accuracy.build_gallery(enrol, enrolled)
    items = [(ids[p], e) for (p, _), e in zip(enrol, enrolled) if not isinstance(e, str)]
    policy, curve = accuracy.calibrated_policy(Policy(), items)
    if threshold is not None:   # a fixed point instead of the calibrated one (to compare)
        policy = Policy(threshold=threshold, margin=policy.margin, target_fpir=None)
    plan = visits(enrol, [g for g in genuine if g[0] in ids], impostor, count, seed)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        encodings = encoding_cache.cached_map(pool, _encode_walkup, [p for _, p in plan],
                                              f"walkup{seed}", "small", 1, lambda p: (p, seed))
    return {"dataset": os.path.abspath(root), "enrolled": len(ids), "enrol_photos": enrol_photos,
            "threshold": policy.threshold,
            "margin": policy.margin, "fps": FPS,
            "evidence": run_rule(gallery, ids, plan, encodings, policy, "evidence"),
            "agreement": run_rule(gallery, ids, plan, encodings, policy, "agreement")}


def _video_frames(path, starts, enrol_at):
    """({start: [rgb frames at FPS for SECONDS]}, the rgb frame at enrol_at seconds)."""
    capture = cv2.VideoCapture(path)

    def frame_at(t):
        capture.set(cv2.CAP_PROP_POS_MSEC, t * 1000)
        ok, frame = capture.read()
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if ok else None

    visits = {s: [frame_at(s + i / FPS) for i in range(int(SECONDS * FPS))] for s in starts}
    enrolled = frame_at(enrol_at)
    capture.release()
    return visits, enrolled


def _largest_encoding(rgb):
    faces = engine.detect_faces(rgb, 480, 0) or engine.detect_faces(rgb, 480, 1)
    if not faces:
        return None
    return engine.face_encoding(rgb, max(faces, key=lambda f: engine.face_height(f) * engine.face_width(f)))


def run_video(video, root, workers):
    """Visits cut from real footage of one person, enrolled from a later frame."""
    capture = cv2.VideoCapture(video)
    length = capture.get(cv2.CAP_PROP_FRAME_COUNT) / (capture.get(cv2.CAP_PROP_FPS) or 30)
    capture.release()
    starts = [float(s) for s in range(0, int(length - SECONDS - 4), 8)]
    visits_rgb, enrol_rgb = _video_frames(video, starts, length - 1.0)
    enrol, _, _ = accuracy.dataset_plan(root)
    enrolled, _ = accuracy.encode_all(enrol, [], "small", 1, workers)
    gallery, ids = accuracy.build_gallery(enrol, enrolled)
    her = _largest_encoding(enrol_rgb)
    ids["__video__"] = len(ids) + 1
    gallery.add(ids["__video__"], her)
    items = [(ids[p], e) for (p, _), e in zip(enrol, enrolled) if not isinstance(e, str)]
    policy, _ = accuracy.calibrated_policy(Policy(), items + [(ids["__video__"], her)])
    plan = [("__video__", s) for s in starts]
    encodings = [[None if f is None else _largest_encoding(f) for f in visits_rgb[s]] for s in starts]
    return {"video": os.path.abspath(video), "visits_at_s": starts, "gallery": len(gallery),
            "threshold": policy.threshold,
            "evidence": run_rule(gallery, ids, plan, encodings, policy, "evidence"),
            "agreement": run_rule(gallery, ids, plan, encodings, policy, "agreement")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--visits", type=int, default=30, help="genuine walk-ups (strangers: half)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--video", default=None, help="real footage of one person (see above)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="a fixed threshold instead of the one calibrated on the enrolled photos")
    parser.add_argument("--enrol-photos", type=int, default=1, metavar="K",
                        help="photos enrolled per person (as bench.accuracy); walk-ups use the others")
    args = parser.parse_args(argv)
    groups = accuracy.group_folders(args.dataset)
    roots = [os.path.join(args.dataset, g) for g in groups] or [args.dataset]
    result = {os.path.basename(r): run(r, args.visits, args.workers, args.seed, args.threshold,
                                       args.enrol_photos) for r in roots}
    if args.video:
        result["video"] = run_video(args.video, roots[0], args.workers)
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
