"""Fit the mean and covariance of real templates of each face model, for bench.scale.

    python -m bench.template_stats PHOTOS_DIR [--face-model mobilefacenet|dlib|all]
                                   [--workers N] [--out-dir bench/data]

Every image under PHOTOS_DIR (PHOTOS_DIR/<group>/<person>/<image>, or <person>/<image>) goes
through the enrolment path (quality gate + one encoding, bench.accuracy's encode_all: each
photo is encoded once, cached in bench/_work). Of each model's accepted templates are written,
to OUT_DIR/template_stats_<model>.npz:

  mean, cov       (dims,) and (dims, dims): the population the synthetic registry is drawn from
  within_cov      the spread of one person's photos around that person's mean (the noise of a
                  second photo of someone enrolled), from people with two accepted photos or more
  unit_length     the model's templates are unit vectors (MobileFaceNet): bench.scale
                  normalises what it draws, as a Gaussian sample is not on the sphere
  model, templates, people, source

Only these statistics are committed, never the photos. The committed files were fitted on
../shared/faces/calibration (LFW deepfunneled crops, east_asian + mixed groups, both
populations in one fit; see that folder's SOURCES.csv).
"""
import argparse
import json
import os

import numpy as np

from bench.accuracy import add_face_model_option, encode_all, face_model, model_names

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def stats_path(model_name, folder=DATA):
    """Where a model's fitted statistics live."""
    return os.path.join(folder, f"template_stats_{model_name}.npz")


def photos(folder):
    """[(person, path)]: a person is the folder their photos are in."""
    return [(os.path.relpath(root, folder), os.path.join(root, name))
            for root, _dirs, files in sorted(os.walk(folder))
            for name in sorted(files) if name.lower().endswith(IMAGE_SUFFIXES)]


def fit(model, people_photos, workers):
    """The statistics of model's accepted templates of people_photos (a dict for np.savez)."""
    enrolled, _probes = encode_all(model, people_photos, [], 1, workers)
    kept = [(person, v) for (person, _path), v in zip(people_photos, enrolled)
            if not isinstance(v, str)]
    matrix = np.array([v for _person, v in kept], np.float64)
    owners = np.array([person for person, _v in kept])
    norms = np.linalg.norm(matrix, axis=1)
    return {"mean": matrix.mean(axis=0), "cov": np.cov(matrix, rowvar=False),
            "within_cov": within_covariance(matrix, owners),
            "unit_length": bool(np.allclose(norms, 1.0, atol=1e-3)), "model": model.id,
            "templates": len(kept), "people": len(set(owners))}


def within_covariance(matrix, owners):
    """Covariance of each template around its own person's mean (people with >= 2 photos)."""
    residuals = np.vstack([matrix[owners == o] - matrix[owners == o].mean(axis=0)
                           for o in sorted(set(owners)) if (owners == o).sum() >= 2])
    return residuals.T @ residuals / max(len(residuals) - 1, 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos")
    add_face_model_option(parser)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out-dir", default=DATA)
    args = parser.parse_args(argv)
    found = photos(args.photos)
    if not found:
        parser.error(f"no photos under {args.photos}")
    report = []
    for name in model_names(args.face_model):
        stats = fit(face_model(name), found, args.workers)
        out = stats_path(name, args.out_dir)
        np.savez(out, source=args.photos, **stats)
        report.append({"model": stats["model"], "photos": len(found), "templates": stats["templates"],
                       "people": stats["people"], "unit_length": stats["unit_length"], "out": out})
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
