"""Walk-up visits made from photos: time to greet and wrong names, evidence rule vs agreement.

    python -m bench.walkup DATASET_DIR [--face-model mobilefacenet|dlib|all] [--visits N]
                           [--workers N] [--seed S] [--video VIDEO] [--enrol-photos K]

DATASET_DIR holds <person>/<images> (or group folders of them, as bench.accuracy). The
registry is built as bench.accuracy does (every 5th person not enrolled, the others from
their first photo) and its threshold chosen from the enrolled photos alone, as the
registry does (recognition.calibration). A walk-up is a 640x360 clip at the rate a device
encodes frames with the face model (FPS: dlib's encoder takes ~0.2 s a face here, 5 frames a
second; MobileFaceNet's frame, detection included, ~0.06 s: 10 a second, leaving the other
half of the time to the blink check and the screen; "frame_cost_s" is measured): the visitor's photo (a
*different* photo from the enrolled one; for strangers, any of theirs) starts small at one
side, moves and grows towards the camera, with sensor noise and changing brightness. Each
frame goes through the device path (detect on the frame, encode the largest face, decide)
and the two track rules are run on the same frames:
  agreement  the shipped rule before: min_frames single-frame decisions in a row agree;
  evidence   agreement, or the mean template of the track's frames (TrackVotes.evidence).
Prints JSON: per rule, visits greeted by the right name within 2 s, median time to greet,
wrong names, strangers named. Frame encodings are cached under bench/_work. --face-model all
runs each model on the same visits: the default model's figures at the top level, each
model's under "models".

--video adds real footage: the person in VIDEO is enrolled from its last frame with a face
(among the dataset's enrolled citizens, so she has lookalike competition), and every 8 s of
the video is a 3 s visit sampled at the same 5 frames/s.
"""
import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np

from bench import accuracy, encoding_cache
from recognition import engine, images, models
from recognition.decision import Policy, TrackVotes, decide

# encoded frames per second on a device, per face model (see above)
FPS = {"dlib": 5.0, "mobilefacenet": 10.0}
SECONDS = 3.0        # length of a walk-up clip
WITHIN_S = 2.0       # the product's promise: greeted within two seconds of appearing
SIZE = (640, 360)


def walkup_frames(rgb, seed, fps):
    """The frames of one walk-up: the photo grows from ~35 % to ~95 % of the frame height
    while moving sideways, with noise and brightness changes (deterministic per seed)."""
    rng = np.random.default_rng(seed)
    width, height = SIZE
    frames, count = [], int(SECONDS * fps)
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
    """(encodings of the largest face in each frame, None where no face was found; seconds
    the device path took a frame on average)."""
    path, seed, name = args
    model = models.get(name)
    model.warm_up()
    rgb = images.load_image(path)
    frames = walkup_frames(rgb, seed, FPS[name])
    started = time.perf_counter()
    out = [_largest_encoding(frame, model) for frame in frames]
    return out, (time.perf_counter() - started) / len(frames)


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


def run_rule(gallery, ids, plan, encodings, policy, rule, fps):
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
                named, at = decision.citizen_id, (i + 1) / fps
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


def run(root, model, count, workers, seed, threshold=None, enrol_photos=1):
    enrol, genuine, impostor = accuracy.dataset_plan(root, enrol_photos)
    enrolled, _ = accuracy.encode_all(model, enrol, [], 1, workers)
    gallery, ids = accuracy.build_gallery(model, enrol, enrolled)
    items = [(ids[p], e) for (p, _), e in zip(enrol, enrolled) if not isinstance(e, str)]
    policy, curve = accuracy.calibrated_policy(model, items)
    if threshold is not None:   # a fixed point instead of the calibrated one (to compare)
        policy = Policy(threshold=threshold, margin=policy.margin)
    plan = visits(enrol, [g for g in genuine if g[0] in ids], impostor, count, seed)
    fps = FPS[model.name]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        done = encoding_cache.cached_map(pool, _encode_walkup, [p for _, p in plan],
                                         f"walkup{seed}", f"{model.id}@{fps}", 1,
                                         lambda p: (p, seed, model.name))
    encodings = [frames for frames, _ in done]
    return {"dataset": os.path.abspath(root), "face_model": model.id, "enrolled": len(ids),
            "enrol_photos": enrol_photos, "threshold": policy.threshold,
            "margin": policy.margin, "fps": fps,
            "frame_cost_s": round(statistics.median(cost for _, cost in done), 4) if done else None,
            "evidence": run_rule(gallery, ids, plan, encodings, policy, "evidence", fps),
            "agreement": run_rule(gallery, ids, plan, encodings, policy, "agreement", fps)}


def _video_frames(path, starts, enrol_at, fps):
    """({start: [rgb frames at fps for SECONDS]}, the rgb frame at enrol_at seconds)."""
    capture = cv2.VideoCapture(path)

    def frame_at(t):
        capture.set(cv2.CAP_PROP_POS_MSEC, t * 1000)
        ok, frame = capture.read()
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if ok else None

    visits = {s: [frame_at(s + i / fps) for i in range(int(SECONDS * fps))] for s in starts}
    enrolled = frame_at(enrol_at)
    capture.release()
    return visits, enrolled


def _largest_encoding(rgb, model):
    """The device path on one frame: the largest face's template, or None (no face, or one
    the model cannot align)."""
    faces = engine.detect_faces(rgb, 480, 0) or engine.detect_faces(rgb, 480, 1)
    if not faces:
        return None
    largest = max(faces, key=lambda f: engine.face_height(f) * engine.face_width(f))
    return model.encodings(rgb, [largest])[0]


def run_video(video, root, model, workers):
    """Visits cut from real footage of one person, enrolled from a later frame."""
    capture = cv2.VideoCapture(video)
    length = capture.get(cv2.CAP_PROP_FRAME_COUNT) / (capture.get(cv2.CAP_PROP_FPS) or 30)
    capture.release()
    fps = FPS[model.name]
    starts = [float(s) for s in range(0, int(length - SECONDS - 4), 8)]
    visits_rgb, enrol_rgb = _video_frames(video, starts, length - 1.0, fps)
    enrol, _, _ = accuracy.dataset_plan(root)
    enrolled, _ = accuracy.encode_all(model, enrol, [], 1, workers)
    gallery, ids = accuracy.build_gallery(model, enrol, enrolled)
    her = _largest_encoding(enrol_rgb, model)
    ids["__video__"] = len(ids) + 1
    gallery.add(ids["__video__"], her)
    items = [(ids[p], e) for (p, _), e in zip(enrol, enrolled) if not isinstance(e, str)]
    policy, _ = accuracy.calibrated_policy(model, items + [(ids["__video__"], her)])
    plan = [("__video__", s) for s in starts]
    encodings = [[None if f is None else _largest_encoding(f, model) for f in visits_rgb[s]]
                 for s in starts]
    return {"video": os.path.abspath(video), "face_model": model.id, "visits_at_s": starts,
            "gallery": len(gallery), "threshold": policy.threshold,
            "evidence": run_rule(gallery, ids, plan, encodings, policy, "evidence", fps),
            "agreement": run_rule(gallery, ids, plan, encodings, policy, "agreement", fps)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    accuracy.add_face_model_option(parser)
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
    names = accuracy.model_names(args.face_model)
    results = {}
    for name in names:
        model = accuracy.face_model(name)
        one = {os.path.basename(r): run(r, model, args.visits, args.workers, args.seed,
                                        args.threshold, args.enrol_photos) for r in roots}
        if args.video:
            one["video"] = run_video(args.video, roots[0], model, args.workers)
        results[name] = one
    result = dict(results[names[0]])
    if len(names) > 1:
        result["models"] = results
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
