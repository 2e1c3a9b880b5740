"""Measure the false-match curve a registry falls back to before it can measure its own.

    python -m bench.prior DATASET_DIR [--face-model mobilefacenet|dlib|all] [--workers N]
                          [--fold K/N] [--write]

DATASET_DIR holds <person>/<images>, or population folders of them (for the shipped priors:
../shared/faces/calibration, with east_asian/ and mixed/). Every photo goes through the
enrolment gate; the non-mated distances of every pair of photos of different people are
measured with the registry's own procedure (recognition.calibration.measure: Clopper-Pearson
bound, the tail carried down). Prints JSON per model: the figures, the thresholds the curve
gives per gallery size, and `table`, the 95 % bounds over the model's grid. --write stores
the tables of every population in recognition/models/priors/<model>.json, where the model's
profile reads them (the prior is, at each distance, the most cautious population's bound).

Why: a registry of fewer than 10 measurable citizens falls back to the prior. dlib's LFW fit
alone allowed 0.50 for 16 citizens on East-Asian faces; a tester's 40-citizen import, most
of it held for duplicate review, greeted 4 of 6 unenrolled East-Asian strangers by someone's
name there. Each model has its own scale, so each has its own prior.
"""
import argparse
import json
import os
import sys
from datetime import date

import numpy as np

from bench import accuracy
from recognition import calibration as maths
from recognition.decision import DEFAULT_TARGET_FPIR

SIZES = (1, 5, 10, 20, 50, 100, 1000)
PRIORS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "recognition", "models", "priors")


def photos_of(root):
    """[(person, path)] of every photo in root/<person>/."""
    return [(person, path) for person in accuracy.subfolders(root)
            for path in accuracy.image_files(os.path.join(root, person))]


def run(root, model, workers=None):
    """The curve of every pair of different people's photos in root, on one model."""
    photos = photos_of(root)
    encodings, _ = accuracy.encode_all(model, photos, [], 1, workers or os.cpu_count())
    kept = [(person, e) for (person, _), e in zip(photos, encodings) if not isinstance(e, str)]
    owners = [person for person, _ in kept]
    if len(set(owners)) < maths.MIN_PEOPLE:
        raise ValueError(f"{len(set(owners))} people with a usable photo; a curve needs at least"
                         f" {maths.MIN_PEOPLE}")
    matrix = np.stack([np.asarray(e, np.float64) for _, e in kept])
    curve = maths.measure(model, maths.enrolled_non_mated(model, owners, matrix), len(set(owners)),
                          prior=_no_prior(model))
    bounds = model.bounds
    return {"dataset": os.path.abspath(root), "face_model": model.id, "photos": len(photos),
            "usable": len(kept), "people": len(set(owners)), "pairs": curve.pairs,
            "tail_slope": round(curve.slope, 2),
            "thresholds": {n: maths.threshold_for(curve, n, DEFAULT_TARGET_FPIR, bounds.threshold_range[1],
                                                  bounds.threshold_floor) for n in SIZES},
            "fmr_at": {t: {"measured": maths.fmr_at(curve, t)[0], "bound": maths.fmr_at(curve, t)[1]}
                       for t in _points(model)},
            "table": [float(f"{u:.3g}") for u in curve.fmr_upper]}


def _no_prior(model):
    """A prior that bounds nothing (every rate 1): the curve is the photos' own."""
    return maths.prior_curve(model, rates=(1.0,) * len(model.grid))


def _points(model):
    """Six distances across the model's operating range, for the printed figures."""
    low, high = model.bounds.threshold_floor, model.bounds.duplicate_ceiling
    return [round(low + (high - low) * i / 5, 3) for i in range(6)]


def run_populations(root, model, workers=None):
    """{population: run()} for each population folder of root, or {name of root: run()}."""
    groups = accuracy.group_folders(root)
    if not groups:
        return {os.path.basename(os.path.abspath(root)): run(root, model, workers)}
    return {g: run(os.path.join(root, g), model, workers) for g in groups}


def write(model, results):
    """recognition/models/priors/<model>.json from {population: run()}."""
    data = {"model": model.id, "grid": list(model.bounds.grid), "measured": date.today().isoformat(),
            "command": f"python -m bench.prior DIR --face-model {model.name} --write",
            "sources": {p: {k: r[k] for k in ("photos", "usable", "people", "pairs", "tail_slope")}
                        for p, r in results.items()},
            "populations": {p: r["table"] for p, r in results.items()}}
    os.makedirs(PRIORS, exist_ok=True)
    with open(os.path.join(PRIORS, f"{model.name}.json"), "w", encoding="utf-8") as f:
        json.dump(data, f, indent=None, separators=(",", ":"))
        f.write("\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    accuracy.add_face_model_option(parser)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--fold", metavar="K/N", default=None,
                        help="only the K-th of every N people (sorted by name)")
    parser.add_argument("--write", action="store_true",
                        help="store the tables as the model's shipped prior")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.dataset):
        parser.error(f"not a folder: {args.dataset}")
    out = {}
    try:
        root = accuracy.fold_root(args.dataset, args.fold) if args.fold else args.dataset
        for name in accuracy.model_names(args.face_model):
            model = accuracy.face_model(name)
            results = run_populations(root, model, args.workers)
            if args.write:
                write(model, results)
            out[name] = results
    except ValueError as e:
        parser.error(str(e))
    first = out[accuracy.model_names(args.face_model)[0]]
    # one population: its figures at the top level (and "table" for --prior)
    result = dict(next(iter(first.values()))) if len(first) == 1 else {"populations": first}
    if len(out) > 1:
        result["models"] = out
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
