"""Measure the recognition levers on real footage: alignment model, enrolment jitter, frames.

    python -m bench.levers VIDEO PHOTOS_DIR [--every N]

The person in VIDEO is enrolled from the first frame with a face; every Nth later frame with
a face is a genuine probe (blinks, head turns, expressions). PHOTOS_DIR holds <person>/<images>
of other people: their photos are impostor probes against the video's person and against
each other. For each (model, num_jitters) it prints the genuine and impostor distance
spreads, the share of genuine frames accepted at the shipped threshold, and how often k
consecutive sampled frames all pass (the several-frames rule) for k = 1, 3, 5.
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np

from recognition import PhotoRejected, engine, images, quality
from recognition.decision import Policy

from .accuracy import image_files, spread

CONFIGS = [("small", 1), ("small", 10), ("large", 1), ("large", 10)]


def video_faces(path, every, detect_max_side=640):
    """(rgb, location) for every Nth frame of the video that shows exactly one face."""
    capture = cv2.VideoCapture(path)
    out, index = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % every == 0:
            rgb = images.bgr_to_rgb(frame)
            faces = engine.detect_faces(rgb, detect_max_side)
            if len(faces) == 1:
                out.append((rgb, faces[0]))
        index += 1
    capture.release()
    return out


def photo_faces(root):
    out = []
    for person in sorted(os.listdir(root)):
        for path in image_files(os.path.join(root, person)):
            try:
                rgb = images.load_image(path)
                out.append((person, rgb, quality.enrolment_template(rgb).location))
            except PhotoRejected:
                pass
    return out


def runs_passing(accepted, k):
    """Share of windows of k consecutive sampled frames in which every frame passes."""
    if len(accepted) < k:
        return None
    windows = [all(accepted[i:i + k]) for i in range(len(accepted) - k + 1)]
    return round(sum(windows) / len(windows), 4)


def measure(frames, photos, model, jitters, threshold):
    first_rgb, first_loc = frames[0]
    template = engine.face_encoding(first_rgb, first_loc, model=model, num_jitters=jitters)
    genuine = np.array([np.linalg.norm(engine.face_encoding(rgb, loc, model=model) - template)
                        for rgb, loc in frames[1:]])
    probes = [(person, engine.face_encoding(rgb, loc, model=model)) for person, rgb, loc in photos]
    enrolled = [(person, engine.face_encoding(rgb, loc, model=model, num_jitters=jitters))
                for person, rgb, loc in photos]
    impostor = [float(np.linalg.norm(e - template)) for _, e in probes]
    impostor += [float(np.linalg.norm(e - t)) for p, e in probes for q, t in enrolled if p != q]
    accepted = list(genuine <= threshold)
    return {"model": model, "num_jitters": jitters,
            "genuine": spread(genuine), "impostor": spread(np.array(impostor)),
            "genuine_frames_accepted": round(float(np.mean(accepted)), 4),
            "k_frames_all_accepted": {str(k): runs_passing(accepted, k) for k in (1, 3, 5)}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video")
    parser.add_argument("photos")
    parser.add_argument("--every", type=int, default=10, help="sample every Nth frame")
    args = parser.parse_args(argv)
    threshold = Policy().threshold
    frames = video_faces(args.video, args.every)
    if len(frames) < 2:
        parser.error("the video needs at least two frames with one face")
    photos = photo_faces(args.photos)
    results = [measure(frames, photos, model, jitters, threshold) for model, jitters in CONFIGS]
    json.dump({"video": args.video, "frames_with_face": len(frames), "threshold": threshold,
               "results": results}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
