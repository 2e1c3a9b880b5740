"""Fit the mean and covariance of real dlib templates, for bench.scale's synthetic registry.

    python -m bench.template_stats PHOTOS_DIR [--out bench/data/template_stats.npz]

Every image under PHOTOS_DIR (recursively) goes through the enrolment path (quality gate +
one encoding, as an import does); the accepted templates' mean (128) and covariance (128x128)
and the within-person covariance
(photos of one person around that person's mean) are written with the number of templates and people. Only these statistics are committed,
never the photos. bench/data/template_stats.npz was fitted on ../shared/faces/calibration
(LFW deepfunneled crops, east_asian + mixed groups; see that folder's SOURCES.csv).
"""
import argparse
import json
import os

import numpy as np

from server.importer import Encoder
from recognition.templates import from_blob


def photo_paths(folder):
    for root, _dirs, files in os.walk(folder):
        for name in sorted(files):
            if name.lower().endswith((".jpg", ".jpeg", ".png")):
                yield os.path.join(root, name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "data",
                                                      "template_stats.npz"))
    args = parser.parse_args(argv)
    paths = list(photo_paths(args.photos))
    photos = [open(path, "rb").read() for path in paths]
    with Encoder(os.cpu_count() or 1) as encoder:
        results = list(encoder.map(photos))
    kept = [(path, from_blob(t)) for path, (t, _fmt, _reason) in zip(paths, results) if t]
    matrix = np.array([v for _p, v in kept], dtype=np.float64)
    owners = np.array([os.path.dirname(p) for p, _v in kept])
    people = len(set(owners))
    # within-person spread: how far a person's photos lie from their own mean (the noise of
    # a second photo of someone enrolled), from people with at least two accepted photos
    residuals = [matrix[owners == o] - matrix[owners == o].mean(axis=0)
                 for o in set(owners) if (owners == o).sum() >= 2]
    residuals = np.vstack(residuals)
    np.savez(args.out, mean=matrix.mean(axis=0), cov=np.cov(matrix, rowvar=False),
             within_cov=residuals.T @ residuals / max(len(residuals) - 1, 1),
             templates=len(kept), people=people, source=args.photos)
    print(json.dumps({"photos": len(paths), "templates": len(kept), "people": people,
                      "out": args.out}))


if __name__ == "__main__":
    main()
