"""Blink liveness on a video: `python -m bench.liveness VIDEO [--expect live|spoof]`.

Prints JSON: every blink in the video with its times, and whether the blink challenge
passed, its window starting when a face is first seen. Beside it, the naive way in the
same run: a fixed EAR threshold (0.21) held for 2 consecutive frames, as in most blink
counters, which ignores the person's own open-eye level and counts frames, not time.
With --expect, the exit code is 1 when the verdict contradicts the expectation.
"""
import argparse
import json
import sys
import time

import cv2

from recognition import engine
from recognition.images import bgr_to_rgb, scaled_to_fit
from recognition.liveness import BlinkDetector, BlinkPolicy, eye_aspect_ratio, face_eyes

TRACK_GAP_S = 1.0     # a face unseen for longer starts a new track (and a new baseline)
NAIVE_THRESHOLD = 0.21
NAIVE_FRAMES = 2


def eye_samples(path, max_side=640, stride=1):
    """(t, (left_eye, right_eye)) per processed frame: the largest whole face's eye
    landmarks, or (t, None) when there is none.

    Faces are found on a copy scaled to max_side; frames where the face is cut by the image
    edge are skipped, since landmarks of half a face are guesses. stride > 1 keeps every
    stride-th frame, as a slow loop on a live camera would.
    """
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FileNotFoundError(f"cannot open video {path}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % stride == 0:
                yield index / fps, _frame_eyes(bgr_to_rgb(frame), max_side)
            index += 1
    finally:
        capture.release()


def _frame_eyes(rgb, max_side):
    # upsample=0 finds faces down to about 80 px on the scaled frame: a citizen at a kiosk.
    small, _ = scaled_to_fit(rgb, max_side)
    faces = engine.detect_faces(small, max_side, upsample=0, clip=False)
    if not faces or faces[0] != engine.clip_location(faces[0], small.shape):
        return None
    return face_eyes(small, faces[0])


def split_tracks(samples, gap_s=TRACK_GAP_S):
    """Samples with a face, split where the face was unseen for more than gap_s."""
    tracks, last_t = [], None
    for t, eyes in samples:
        if eyes is None:
            continue
        if last_t is None or t - last_t > gap_s:
            tracks.append([])
        tracks[-1].append((t, eyes))
        last_t = t
    return tracks


def adaptive_blinks(tracks, policy):
    """Blinks of every track, each track with its own detector (its own baseline)."""
    blinks = []
    for track in tracks:
        detector = BlinkDetector(policy)
        for t, eyes in track:
            detector.update(t, eyes)
        blinks.extend(detector.blinks)
    return blinks


def naive_blinks(tracks, threshold=NAIVE_THRESHOLD, frames=NAIVE_FRAMES):
    """Blink times by the naive rule: mean EAR under a fixed threshold for `frames` frames."""
    times = []
    for track in tracks:
        run = 0
        for t, (left_eye, right_eye) in track:
            if (eye_aspect_ratio(left_eye) + eye_aspect_ratio(right_eye)) / 2 < threshold:
                run += 1
                continue
            if run >= frames:
                times.append(round(t, 3))
            run = 0
    return times


def analyse(path, policy=None, max_side=640, stride=1):
    """The report printed by the command, as a dict."""
    policy = policy or BlinkPolicy()
    started = time.perf_counter()
    samples = list(eye_samples(path, max_side, stride))
    elapsed = time.perf_counter() - started
    tracks = split_tracks(samples)
    blinks = adaptive_blinks(tracks, policy)
    first_face = tracks[0][0][0] if tracks else None
    window_end = None if first_face is None else first_face + policy.window_s
    passing = [b for b in blinks if window_end is not None and b.end <= window_end]
    naive = naive_blinks(tracks)
    return {
        "video": str(path),
        "frames_processed": len(samples),
        "frames_with_face": sum(len(track) for track in tracks),
        "tracks": len(tracks),
        "first_face_t": _round(first_face),
        "challenge": {"start": _round(first_face), "end": _round(window_end),
                      "window_s": policy.window_s,
                      "blink": passing[0].as_dict() if passing else None},
        "liveness_passed": bool(passing),
        "blinks": [b.as_dict() for b in blinks],
        "blink_count": len(blinks),
        "naive": {"rule": f"mean EAR < {NAIVE_THRESHOLD} for {NAIVE_FRAMES} frames",
                  "blink_times": naive, "blink_count": len(naive),
                  "liveness_passed": any(first_face <= t <= window_end for t in naive)
                  if first_face is not None else False},
        "seconds": round(elapsed, 2),
        "frames_per_second": round(len(samples) / elapsed, 1) if elapsed else None,
    }


def _round(value):
    return None if value is None else round(value, 3)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.liveness", description=__doc__.split("\n")[0])
    parser.add_argument("video")
    parser.add_argument("--expect", choices=["live", "spoof"])
    parser.add_argument("--window", type=float, default=BlinkPolicy.window_s,
                        help="challenge window in seconds (default %(default)s)")
    parser.add_argument("--max-side", type=int, default=640,
                        help="detect and place landmarks on frames scaled to this size")
    parser.add_argument("--stride", type=int, default=1,
                        help="process every Nth frame, as a slower loop would")
    args = parser.parse_args(argv)
    try:
        report = analyse(args.video, BlinkPolicy(window_s=args.window), args.max_side, args.stride)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    if args.expect and report["liveness_passed"] != (args.expect == "live"):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
