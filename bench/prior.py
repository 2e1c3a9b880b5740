"""Measure the false-match curve a registry falls back to before it can measure its own.

    python -m bench.prior DATASET_DIR [--workers N] [--fold K/N]

DATASET_DIR holds <person>/<images> (for the shipped table: ../shared/faces/calibration/
east_asian, the faces this hall serves). Every photo goes through the enrolment gate; the
non-mated distances of every pair of photos of different people are measured with the
registry's own procedure (recognition.calibration.measure: Clopper-Pearson bound, the tail
carried down). Prints JSON: the figures, the thresholds the LFW fit and this curve give per
gallery size, and `table`, the 95 % bounds over the grid that recognition/priors.py holds.

Why: a registry of fewer than 10 measurable citizens fell back to the LFW fit alone, which on
East-Asian faces allows 0.50 for 16 citizens; a tester's 40-citizen import, most of it held
for duplicate review, greeted 4 of 6 unenrolled East-Asian strangers by someone's name there.
"""
import argparse
import json
import os
import sys

import numpy as np

from bench import accuracy
from recognition import calibration as maths
from recognition.decision import false_match_rate

SIZES = (1, 5, 10, 20, 50, 100, 1000)


def photos_of(root):
    """[(person, path)] of every photo in root/<person>/."""
    return [(person, path) for person in accuracy.subfolders(root)
            for path in accuracy.image_files(os.path.join(root, person))]


def run(root, workers=None):
    photos = photos_of(root)
    encodings, _ = accuracy.encode_all(photos, [], "small", 1, workers or os.cpu_count())
    kept = [(person, e) for (person, _), e in zip(photos, encodings) if not isinstance(e, str)]
    owners = [person for person, _ in kept]
    if len(set(owners)) < maths.MIN_PEOPLE:
        raise ValueError(f"{len(set(owners))} people with a usable photo; a curve needs at least"
                         f" {maths.MIN_PEOPLE}")
    matrix = np.stack([np.asarray(e, np.float64) for _, e in kept])
    curve = maths.measure(maths.enrolled_non_mated(owners, matrix), len(set(owners)))
    lfw = maths.prior_curve(lfw_only=True)
    return {"dataset": os.path.abspath(root), "photos": len(photos), "usable": len(kept),
            "people": len(set(owners)), "pairs": curve.pairs, "tail_slope": round(curve.slope, 2),
            "thresholds": {n: {"lfw_fit": maths.threshold_for(lfw, n), "measured": maths.threshold_for(curve, n)}
                           for n in SIZES},
            "fmr_at": {t: {"measured": maths.fmr_at(curve, t)[0], "bound": maths.fmr_at(curve, t)[1],
                           "lfw_fit": false_match_rate(t)} for t in (0.35, 0.40, 0.45, 0.50, 0.55, 0.60)},
            "table": [float(f"{u:.3g}") for u in curve.fmr_upper]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--fold", metavar="K/N", default=None,
                        help="only the K-th of every N people (sorted by name)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.dataset):
        parser.error(f"not a folder: {args.dataset}")
    try:
        root = accuracy.fold_root(args.dataset, args.fold) if args.fold else args.dataset
        result = run(root, args.workers)
    except ValueError as e:
        parser.error(str(e))
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
