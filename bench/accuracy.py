"""Open-set identification accuracy of the shipped decision policy against the naive one.

    python -m bench.accuracy DATASET_DIR [--calibrate] [--enrol-photos K] [--model small|large]
                             [--jitters N] [--workers N] [--fold K/N] [--prior PRIOR_JSON]

DATASET_DIR holds <person>/<images>. People are sorted by name; every 5th person (the 5th,
10th, ...) is not enrolled and all their photos are impostor probes. Every other person's
first image (natural sort) is enrolled through the real enrolment path (quality gate), the
rest are genuine probes. DATASET_DIR/../identities_unknown_probes/ (images, or folders of
images) adds impostor probes. Probes go through the device path (largest face, same
encoder) and recognition.decision.decide(), the code the devices run, one image per probe.

Prints JSON: the shipped policy and the naive one (nearest neighbour at tolerance 0.6), the
false-match rate per comparison, the FPIR that implies at 1k/10k/100k enrolled, and a sweep
of thresholds and margins to recalibrate on a bureau's own photos.

--calibrate chooses the threshold the way the registry does (recognition.calibration):
from the non-mated distances between the *enrolled* photos alone (no peeking at probes),
the largest t with n x FMR_upper(t) <= target FPIR. The LFW-prior point is printed beside
it ("prior"). When DATASET_DIR holds group folders (e.g. east_asian/, mixed/, each of
<person>/<images>), "groups" repeats the figures for each group as a registry of its own.
"""
import argparse
import json
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from bench import encoding_cache
from recognition import PhotoRejected, calibration, engine, images, quality
from recognition.decision import Policy, decide, false_match_rate, naive_decide
from recognition.gallery import Gallery

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
GALLERY_SIZES = (1_000, 10_000, 100_000)
PROBE_MAX_SIDE = 640  # devices detect on a downscaled frame too


def natural_key(text):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def image_files(folder):
    return sorted((os.path.join(folder, f) for f in os.listdir(folder)
                   if f.lower().endswith(IMAGE_SUFFIXES)), key=lambda p: natural_key(os.path.basename(p)))


def dataset_plan(root, enrol_photos=1):
    """(enrol, genuine, impostor): enrol is [(person, path)], probes are [(person or None, path)].
    An enrolled person's first enrol_photos photos are enrolled (a registry may hold several
    templates a citizen, e.g. an ID photo and a clerk-confirmed capture); the rest are probes."""
    people = subfolders(root)
    enrol, genuine, impostor = [], [], []
    for index, person in enumerate(people, start=1):
        files = image_files(os.path.join(root, person))
        if not files:
            continue
        if index % 5 == 0:
            impostor += [(person, f) for f in files]
        else:
            enrol += [(person, f) for f in files[:enrol_photos]]
            genuine += [(person, f) for f in files[enrol_photos:]]
    extra = os.path.join(os.path.dirname(os.path.abspath(root)), "identities_unknown_probes")
    if os.path.isdir(extra):
        for dirpath, _, _ in sorted(os.walk(extra)):
            impostor += [(None, f) for f in image_files(dirpath)]
    return enrol, genuine, impostor


def _enrol_one(args):
    path, model, jitters = args
    try:
        return quality.enrolment_template(images.load_image(path), num_jitters=jitters, model=model).encoding
    except PhotoRejected as e:
        return e.reason


def _probe_one(args):
    """The device path on one image: largest face on a downscaled copy, then encode."""
    path, model = args
    try:
        rgb = images.load_image(path)
    except PhotoRejected as e:
        return e.reason
    location = probe_location(rgb)
    return "no face found" if location is None else engine.face_encoding(rgb, location, model=model)


def probe_location(rgb):
    """Where the device path would encode a probe: its largest face, or None."""
    faces = engine.detect_faces(rgb, PROBE_MAX_SIDE)
    if not faces:
        # Dataset crops can be small; the device would see such a visitor from closer.
        faces = engine.detect_faces(rgb, PROBE_MAX_SIDE, upsample=2)
    return faces[0] if faces else None


def encode_all(enrol, probes, model, jitters, workers):
    """Enrolment templates and probe encodings; each photo is encoded once (bench/_work cache)."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        enrolled = encoding_cache.cached_map(pool, _enrol_one, [p for _, p in enrol], "enrol",
                                             model, jitters, lambda p: (p, model, jitters))
        probed = encoding_cache.cached_map(pool, _probe_one, [p for _, p in probes], "probe",
                                           model, 0, lambda p: (p, model))
    return enrolled, probed


def build_gallery(enrol, encodings):
    """Gallery of accepted enrolments, and the set of people actually enrolled."""
    gallery, people, ids = Gallery(), set(), {}
    for (person, _), encoding in zip(enrol, encodings):
        if isinstance(encoding, str):
            continue
        ids.setdefault(person, len(ids) + 1)     # a second photo is the same citizen
        gallery.add(ids[person], encoding)
        people.add(person)
    return gallery, ids


def score(gallery, ids, probes, encodings, decide_fn):
    """Counts for one policy. A probe of someone not enrolled counts as an impostor probe."""
    counts = dict(correct=0, wrong_person=0, miss=0, impostor_named=0, genuine_probes=0,
                  impostor_probes=0)
    for (person, _), encoding in zip(probes, encodings):
        expected = ids.get(person)
        named = None if isinstance(encoding, str) else decide_fn(gallery, encoding).citizen_id
        if expected is None:
            counts["impostor_probes"] += 1
            counts["impostor_named"] += named is not None
        else:
            counts["genuine_probes"] += 1
            key = "miss" if named is None else "correct" if named == expected else "wrong_person"
            counts[key] += 1
    counts["fpir"] = round(counts["impostor_named"] / counts["impostor_probes"], 5) \
        if counts["impostor_probes"] else None
    counts["tpir"] = round(counts["correct"] / counts["genuine_probes"], 5) \
        if counts["genuine_probes"] else None
    counts["enrolled"] = len(ids)
    return counts


def _distance_table(gallery_items, probes, encodings, ids):
    """(probe labels, template owners, probe x template distances) in one numpy pass.
    A probe's label is its person's enrolled id, or 0 for someone not enrolled."""
    kept = [(ids.get(person, 0), e) for (person, _), e in zip(probes, encodings)
            if not isinstance(e, str)]
    labels = np.array([k for k, _ in kept], dtype=np.int64)
    owners = np.array([owner for owner, _ in gallery_items], dtype=np.int64)
    if not kept or not gallery_items:
        return labels, owners, np.zeros((len(labels), len(owners)))
    probe_matrix = np.stack([e for _, e in kept]).astype(np.float64)
    templates = np.stack([t for _, t in gallery_items]).astype(np.float64)
    squared = ((probe_matrix ** 2).sum(1)[:, None] + (templates ** 2).sum(1)[None, :]
               - 2 * probe_matrix @ templates.T)
    return labels, owners, np.sqrt(np.clip(squared, 0, None))


def probe_distances(gallery_items, probes, encodings, ids):
    """(mated, non-mated) from one distance table: every genuine probe to its own enrolled
    templates, and every probe to every enrolled template of another person."""
    labels, owners, distances = _distance_table(gallery_items, probes, encodings, ids)
    same = labels[:, None] == owners[None, :]
    return distances[same & (labels[:, None] != 0)], distances[~same]


def spread(values):
    """Summary of a distance distribution: how far apart genuine and impostor pairs sit."""
    if not values.size:
        return None
    q = np.percentile(values, [1, 5, 50, 95, 99])
    return {"n": int(values.size), "min": round(float(values.min()), 4),
            "p1": round(float(q[0]), 4), "p5": round(float(q[1]), 4), "median": round(float(q[2]), 4),
            "p95": round(float(q[3]), 4), "p99": round(float(q[4]), 4),
            "max": round(float(values.max()), 4)}


def fmr_upper_95(matches, comparisons):
    """One-sided 95 % upper bound on the false-match rate (rule of three when none seen):
    with few comparisons a measured 0 is not a 0."""
    if not comparisons:
        return None
    if matches == 0:
        return 3.0 / comparisons
    rate = matches / comparisons
    return rate + 1.645 * (rate * (1 - rate) / comparisons) ** 0.5


def expected_fpir(fmr):
    """FPIR at larger galleries if false matches were independent: 1 - (1 - FMR)^N.
    An upper-bound style estimate for the threshold alone; the margin rule lowers it."""
    return {str(n): round(1 - (1 - fmr) ** n, 5) for n in GALLERY_SIZES}


def sweep(gallery, ids, probes, encodings):
    rows = []
    for threshold in np.arange(0.35, 0.625, 0.025):
        for margin in (0.0, 0.03, 0.06, 0.1):
            policy = Policy(threshold=round(float(threshold), 3), margin=margin, target_fpir=None)
            c = score(gallery, ids, probes, encodings, lambda g, e: decide(g, e, policy))
            rows.append({"threshold": policy.threshold, "margin": margin, "correct": c["correct"],
                         "wrong_person": c["wrong_person"], "fpir": c["fpir"]})
    return rows


def best_point(rows, max_fpir=0.01):
    """The operating point the rules ask for: no wrong names, FPIR <= 1 %, most correct."""
    ok = [r for r in rows if r["wrong_person"] == 0 and (r["fpir"] or 0) <= max_fpir]
    return max(ok, key=lambda r: (r["correct"], -r["threshold"] + r["margin"]), default=None)


def group_folders(root):
    """Subfolders that are groups of people (their own subfolders hold the images), or []."""
    subdirs = subfolders(root)
    groups = [d for d in subdirs
              if any(os.path.isdir(os.path.join(root, d, e)) for e in os.listdir(os.path.join(root, d)))]
    return groups if groups and len(groups) == len(subdirs) else []


def calibrated_policy(policy, items):
    """The registry's procedure on the enrolled templates alone: (policy with the measured
    threshold for this gallery, fixed; the curve it rests on)."""
    owners = [owner for owner, _ in items]
    distances = calibration.enrolled_non_mated(owners, np.stack([e for _, e in items]))
    curve = calibration.measure(distances, len(set(owners)))
    threshold = calibration.threshold_for(curve, len(set(owners)), policy.target_fpir or 0.005,
                                          policy.threshold)
    return Policy(threshold=threshold, margin=policy.margin, target_fpir=None), curve


def run_groups(root, model="small", jitters=1, workers=None, policy=None, calibrate=False,
               enrol_photos=1):
    """Every group folder as a registry of its own; the top level is all groups together."""
    groups = group_folders(root)
    if not groups:
        return run(root, model, jitters, workers, policy, calibrate, enrol_photos)
    with_groups = _combined_root(root, groups)
    result = run(with_groups, model, jitters, workers, policy, calibrate, enrol_photos)
    result["dataset"] = os.path.abspath(root)
    result["groups"] = {g: _headline(run(os.path.join(root, g), model, jitters, workers, policy,
                                         calibrate, enrol_photos)) for g in groups}
    return result


def subfolders(root):
    """The folders in root (people, or groups of people), sorted by name."""
    return sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))


def _link_folder(kind, root, links):
    """A folder under bench/_work/<kind>/ named after root, holding symlinks {name: target}:
    a dataset made of parts of others without copying a photo."""
    folder = os.path.join(encoding_cache.WORK, kind, re.sub(r"\W+", "_", os.path.abspath(root)))
    os.makedirs(folder, exist_ok=True)
    for name, target in links.items():
        link = os.path.join(folder, name)
        if not os.path.exists(link):
            os.symlink(os.path.abspath(target), link)
    return folder


def _combined_root(root, groups):
    """A folder of symlinks <group>__<person> -> the person's folder (under bench/_work)."""
    return _link_folder("combined", root, {f"{g}__{person}": os.path.join(root, g, person)
                                           for g in groups for person in os.listdir(os.path.join(root, g))})


def fold_root(root, fold):
    """A folder of symlinks to the people of fold "K/N" of root (people sorted by name, the
    K-th of every N), under bench/_work: a prior measured on one fold (bench.prior --fold 1/2)
    and a registry run on the other (--fold 2/2 --prior) never share a face."""
    k, n = (int(part) for part in fold.split("/"))
    if not 1 <= k <= n:
        raise ValueError(f"--fold {fold}: K must be 1..N")
    return _link_folder(f"folds_{k}of{n}", root, {person: os.path.join(root, person)
                                                  for index, person in enumerate(subfolders(root))
                                                  if index % n == k - 1})


def use_prior(path):
    """Replace the shipped East-Asian prior for this run by the `table` of a bench.prior JSON
    (so a registry is measured with a prior made from faces it does not hold)."""
    with open(path, encoding="utf-8") as f:
        table = tuple(float(v) for v in json.load(f)["table"])
    if len(table) != len(calibration.GRID):
        raise ValueError(f"{path}: a table of {len(table)} values, the grid has {len(calibration.GRID)}")
    calibration.EAST_ASIAN_FMR_UPPER = table


def _headline(result):
    keys = ("policy", "correct", "wrong_person", "miss", "fpir", "tpir", "impostor_named",
            "genuine_probes", "impostor_probes", "enrolled", "calibration", "prior", "naive",
            "genuine_distances", "non_mated_distances", "best_point_on_this_data", "one_to_one")
    out = {k: result[k] for k in keys if k in result}
    out["naive"] = {k: result["naive"][k] for k in ("correct", "wrong_person", "fpir", "tpir")}
    return out


def run(root, model="small", jitters=1, workers=None, policy=None, calibrate=False, enrol_photos=1):
    policy = policy or Policy()
    enrol, genuine, impostor = dataset_plan(root, enrol_photos)
    probes = genuine + impostor
    enrolled, probed = encode_all(enrol, probes, model, jitters, workers or os.cpu_count())
    gallery, ids = build_gallery(enrol, enrolled)
    items = [(ids[p], e) for (p, _), e in zip(enrol, enrolled) if not isinstance(e, str)]
    genuine_d, distances = probe_distances(items, probes, probed, ids)
    extra = {}
    if calibrate and items:
        prior_policy = policy
        policy, curve = calibrated_policy(policy, items)
        prior = score(gallery, ids, probes, probed, lambda g, e: decide(g, e, prior_policy))
        extra["prior"] = {"threshold": prior_policy.threshold_for(len(gallery)), **prior}
        extra["calibration"] = {
            "source": curve.source, "people": curve.people, "pairs": curve.pairs,
            "tail_slope": round(curve.slope, 2), "notes": curve.as_dict()["notes"],
            "threshold": policy.threshold,
            "fmr_upper_at_threshold": calibration.fmr_at(curve, policy.threshold)[1],
            "lfw_prior_fmr_at_threshold": false_match_rate(policy.threshold),
            "expected_fpir_bound": round(calibration.expected_fpir(curve, len(gallery),
                                                                   policy.threshold), 5)}
        extra["one_to_one"] = one_to_one(curve, genuine_d, distances)
    shipped = score(gallery, ids, probes, probed, lambda g, e: decide(g, e, policy))
    naive = score(gallery, ids, probes, probed, naive_decide)
    threshold = policy.threshold_for(len(gallery))
    fmr, fmr_upper = measured_fmr(distances, threshold)
    naive_fmr, _ = measured_fmr(distances, 0.6)
    rows = sweep(gallery, ids, probes, probed)
    return {
        "dataset": os.path.abspath(root), "model": model, "num_jitters": jitters,
        "enrol_photos": enrol_photos,
        "policy": {"threshold": threshold, "max_threshold": policy.threshold,
                   "margin": policy.margin, "target_fpir": policy.target_fpir},
        **shipped, **extra,
        "enrol_rejected": sum(isinstance(e, str) for e in enrolled),
        "probes_without_face": sum(isinstance(e, str) for e in probed),
        "false_match_rate": round(fmr, 7), "non_mated_comparisons": int(distances.size),
        "false_match_rate_upper_95": fmr_upper and round(fmr_upper, 7),
        **at_gallery_sizes(policy, distances),
        "genuine_distances": spread(genuine_d), "non_mated_distances": spread(distances),
        "naive": {"tolerance": 0.6, **naive, "false_match_rate": round(naive_fmr, 7),
                  "expected_fpir_at_gallery_size": expected_fpir(naive_fmr)},
        "best_point_on_this_data": best_point(rows),
        "sweep": rows,
    }


def one_to_one(curve, genuine, impostor):
    """The ID-number check: each probe compared with one claimed citizen's templates only.
    The calibrated point (recognition.calibration.one_to_one_threshold on the enrolled
    photos' curve) beside the naive one (face_recognition's compare_faces tolerance, 0.6):
    the share of genuine probes accepted, and of impostor claims (a probe under another
    enrolled person's ID number) accepted: genuine and impostor are those claims' distances."""

    def at(t):
        return {"threshold": t, "genuine_accepted": calibration.share_within(genuine, t),
                "impostor_accepted": round(float((impostor <= t).mean()), 6) if impostor.size else None}
    t = calibration.one_to_one_threshold(curve)
    return {"target_fmr": calibration.ONE_TO_ONE_FMR, "genuine_claims": int(genuine.size),
            "impostor_claims": int(impostor.size), **at(t), "naive": at(0.6)}


def measured_fmr(distances, threshold):
    """(rate, 95 % upper bound) of non-mated distances within threshold."""
    if not distances.size:
        return 0.0, None
    matches = int((distances <= threshold).sum())
    return matches / distances.size, fmr_upper_95(matches, int(distances.size))


def at_gallery_sizes(policy, distances):
    """What to expect at 1k/10k/100k enrolled: the threshold the policy would use there, and the
    FPIR that the false-match rate measured at that threshold implies (and its upper bound)."""
    thresholds = {str(n): policy.threshold_for(n) for n in GALLERY_SIZES}
    fpir, upper = {}, {}
    for n in GALLERY_SIZES:
        rate, bound = measured_fmr(distances, thresholds[str(n)])
        fpir[str(n)] = round(1 - (1 - rate) ** n, 5)
        upper[str(n)] = bound and round(1 - (1 - bound) ** n, 5)
    return {"threshold_at_gallery_size": thresholds, "expected_fpir_at_gallery_size": fpir,
            "expected_fpir_at_gallery_size_upper_95": upper}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--model", choices=["small", "large"], default="small",
                        help="landmark model used to align faces before encoding")
    parser.add_argument("--jitters", type=int, default=1, help="num_jitters at enrolment")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--margin", type=float, default=None)
    parser.add_argument("--calibrate", action="store_true",
                        help="choose the threshold from the enrolled photos' own non-mated distances"
                             " (as the registry does); the LFW-prior point is printed as \"prior\"")
    parser.add_argument("--enrol-photos", type=int, default=1, metavar="K",
                        help="photos enrolled per person (the first K; the rest are probes)")
    parser.add_argument("--fixed", action="store_true",
                        help="use --threshold as is, without tightening it for the gallery size")
    parser.add_argument("--fold", metavar="K/N", default=None,
                        help="only the K-th of every N people (sorted by name)")
    parser.add_argument("--prior", metavar="PRIOR_JSON", default=None,
                        help="a bench.prior result whose table replaces the shipped prior")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.dataset):
        parser.error(f"not a folder: {args.dataset}")
    try:
        if args.fold:
            args.dataset = fold_root(args.dataset, args.fold)
        if args.prior:
            use_prior(args.prior)
    except (ValueError, OSError, KeyError) as e:
        parser.error(str(e))
    base = Policy()
    policy = Policy(threshold=args.threshold if args.threshold is not None else base.threshold,
                    margin=args.margin if args.margin is not None else base.margin,
                    target_fpir=None if args.fixed else base.target_fpir)
    if args.enrol_photos < 1:
        parser.error("--enrol-photos must be at least 1")
    json.dump(run_groups(args.dataset, args.model, args.jitters, args.workers, policy, args.calibrate,
                         args.enrol_photos),
              sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
