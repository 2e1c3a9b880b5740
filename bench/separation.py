"""Two levers that separate faces better than the shipped templates, measured, not shipped.

    python -m bench.separation DATASET_DIR [--enrol-photos K] [--workers N]

DATASET_DIR and the protocol are bench.accuracy's (group folders each a registry of their
own). Each lever is run beside the shipped templates on the same photos:

  shipped   the templates the devices and the server use today;
  mirror    each template the mean of the face's encoding and its mirror image's (the
            encoder sees both halves of an unevenly lit face); a device would encode every
            frame twice;
  centred   distances taken about the registry's own mean template: each template minus
            the mean of the *enrolled* templates, made unit length, scaled back to the
            median distance from that mean (so the shipped thresholds keep their scale).
            One population's faces share a large common part (on East-Asian faces the
            mean template is 1.29 long, a template 1.36): removing it leaves what tells
            people apart. Every distance the registry measures would change with it;
  mirror_centred  both.

For each group and lever: the calibrated point (the registry's procedure on the enrolled
templates alone, as bench.accuracy --calibrate) and the best point on the probes
themselves (no wrong names, FPIR <= 1 %: what the templates could do if the threshold were
known; the sweep of bench.accuracy). Prints JSON. Mirror encodings are cached beside
bench.accuracy's under bench/_work.
"""
import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from bench import accuracy, encoding_cache
from recognition import PhotoRejected, engine, images, quality
from recognition.decision import Policy, decide

LEVERS = ("shipped", "mirror", "centred", "mirror_centred")


def _mirror_one(args):
    """The mirror image's encoding of the face the enrolment gate or the device path would
    encode (kind "enrol" or "probe"), or the reason there is none."""
    path, kind, model = args
    try:
        rgb = images.load_image(path)
        location = quality.enrolment_template(rgb).location if kind == "enrol" \
            else accuracy.probe_location(rgb)
    except PhotoRejected as e:
        return e.reason
    if location is None:
        return "no face found"
    top, right, bottom, left = location
    width = rgb.shape[1]
    return engine.face_encoding(np.ascontiguousarray(rgb[:, ::-1]), (top, width - left, bottom, width - right),
                                model=model)


def mirrored(encodings, mirrors):
    """Each encoding averaged with its mirror image's; a photo either lacks stays rejected."""
    return [e if isinstance(e, str) else m if isinstance(m, str)
            else ((np.asarray(e, np.float64) + m) / 2).astype(np.float32)
            for e, m in zip(encodings, mirrors)]


def centring(enrolled):
    """The map to distances about the registry's mean template, learnt from the enrolled
    templates alone (no probe is looked at): x -> (x - mean) / |x - mean| * radius, radius
    the median |template - mean|. Rejected photos (str) pass through."""
    matrix = np.stack([e for e in enrolled if not isinstance(e, str)]).astype(np.float64)
    mean = matrix.mean(axis=0)
    radius = float(np.median(np.linalg.norm(matrix - mean, axis=1)))

    def move(encoding):
        if isinstance(encoding, str):
            return encoding
        offset = np.asarray(encoding, np.float64) - mean
        length = float(np.linalg.norm(offset))
        return (offset * (radius / length if length > 0 else 0.0)).astype(np.float32)
    return move


def lever_encodings(enrolled, probed, enrol_mirrors, probe_mirrors):
    """{lever: (enrolled, probed)} for every lever in LEVERS."""
    out = {"shipped": (enrolled, probed),
           "mirror": (mirrored(enrolled, enrol_mirrors), mirrored(probed, probe_mirrors))}
    for name in ("shipped", "mirror"):
        enrol_side, probe_side = out[name]
        if any(not isinstance(e, str) for e in enrol_side):
            move = centring(enrol_side)
            enrol_side, probe_side = [move(e) for e in enrol_side], [move(e) for e in probe_side]
        out["centred" if name == "shipped" else "mirror_centred"] = (enrol_side, probe_side)
    return out


def points(enrol, probes, enrolled, probed, policy):
    """The calibrated point and the best point on the probes for one set of templates."""
    gallery, ids = accuracy.build_gallery(enrol, enrolled)
    items = [(ids[p], e) for (p, _), e in zip(enrol, enrolled) if not isinstance(e, str)]
    if not items:
        return {"calibrated": None, "best_point_on_this_data": None}
    calibrated, _ = accuracy.calibrated_policy(policy, items)
    counts = accuracy.score(gallery, ids, probes, probed, lambda g, e: decide(g, e, calibrated))
    best = accuracy.best_point(accuracy.sweep(gallery, ids, probes, probed))
    genuine = counts["genuine_probes"]
    if best is not None and genuine:
        best = {**best, "tpir": round(best["correct"] / genuine, 5)}
    return {"calibrated": {"threshold": calibrated.threshold,
                           **{k: counts[k] for k in ("correct", "wrong_person", "fpir", "tpir")}},
            "best_point_on_this_data": best}


def run(root, enrol_photos=1, workers=None, model="small", policy=None):
    """Figures for every lever on one registry (one folder of <person>/<images>)."""
    policy = policy or Policy()
    workers = workers or os.cpu_count()
    enrol, genuine, impostor = accuracy.dataset_plan(root, enrol_photos)
    probes = genuine + impostor
    enrolled, probed = accuracy.encode_all(enrol, probes, model, 1, workers)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        enrol_mirrors, probe_mirrors = (
            encoding_cache.cached_map(pool, _mirror_one, [p for _, p in side], f"{kind}-mirror",
                                      model, 0, lambda p, kind=kind: (p, kind, model))
            for kind, side in (("enrol", enrol), ("probe", probes)))
    _, ids = accuracy.build_gallery(enrol, enrolled)
    genuine_probes = sum(person in ids for person, _ in probes)
    levers = lever_encodings(enrolled, probed, enrol_mirrors, probe_mirrors)
    return {"enrolled": len(ids), "genuine_probes": genuine_probes,
            "impostor_probes": len(probes) - genuine_probes,
            "levers": {name: points(enrol, probes, *levers[name], policy) for name in LEVERS}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--enrol-photos", type=int, default=1, metavar="K",
                        help="photos enrolled per person (the first K; the rest are probes)")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    if not os.path.isdir(args.dataset):
        parser.error(f"not a folder: {args.dataset}")
    if args.enrol_photos < 1:
        parser.error("--enrol-photos must be at least 1")
    groups = accuracy.group_folders(args.dataset) or [""]
    result = {"dataset": os.path.abspath(args.dataset), "enrol_photos": args.enrol_photos,
              "target_fpir": Policy().target_fpir,
              "groups": {group or os.path.basename(os.path.abspath(args.dataset)):
                         run(os.path.join(args.dataset, group), args.enrol_photos, args.workers)
                         for group in groups}}
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
