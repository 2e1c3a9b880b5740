"""Open-set identification accuracy of the shipped decision policy against the naive one.

    python -m bench.accuracy DATASET_DIR [--face-model mobilefacenet|dlib|all] [--calibrate]
                             [--enrol-photos K] [--landmarks small|large] [--jitters N]
                             [--workers N] [--fold K/N] [--prior PRIOR_JSON]

DATASET_DIR holds <person>/<images>. People are sorted by name; every 5th person (the 5th,
10th, ...) is not enrolled and all their photos are impostor probes. Every other person's
first image (natural sort) is enrolled through the real enrolment path (quality gate), the
rest are genuine probes. DATASET_DIR/../identities_unknown_probes/ (images, or folders of
images) adds impostor probes. Probes go through the device path (largest face, same
encoder) and recognition.decision.decide(), the code the devices run, one image per probe.

Prints JSON: the shipped policy and the naive one (nearest neighbour at the model's naive
tolerance: face_recognition's 0.6 for dlib), the false-match rate per comparison, the FPIR
that implies at 1k/10k/100k enrolled, and a sweep of thresholds and margins to recalibrate
on a bureau's own photos. --face-model all runs every model on the same photos: the default
model's figures at the top level, each model's under "models".

--calibrate chooses the threshold the way the registry does (recognition.calibration):
from the non-mated distances between the *enrolled* photos alone (no peeking at probes),
the largest t with n x FMR_upper(t) <= target FPIR. The prior's point is printed beside
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
from recognition import PhotoRejected, calibration, engine, images, models, quality
from recognition.decision import DEFAULT_TARGET_FPIR, Policy, decide, naive_decide
from recognition.gallery import Gallery
from recognition.models import dlib_resnet

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


def face_model(name, landmarks="small"):
    """The profile of a model name; dlib's with the landmark predictor asked for."""
    return dlib_resnet.DlibResNet(landmarks) if name == "dlib" and landmarks != "small" \
        else models.get(name)


def model_names(choice):
    """The models --face-model names, the default first ("all": every model)."""
    return [models.DEFAULT] + [n for n in models.names() if n != models.DEFAULT] \
        if choice == "all" else [choice]


def _enrol_one(args):
    path, name, landmarks, jitters = args
    try:
        rgb = images.load_image(path)
        return quality.enrolment_template(rgb, face_model(name, landmarks), jitters).encoding
    except PhotoRejected as e:
        return e.reason


def _probe_one(args):
    """The device path on one image: largest face on a downscaled copy, then encode."""
    path, name, landmarks = args
    try:
        rgb = images.load_image(path)
        location = probe_location(rgb)
        return "no face found" if location is None else \
            face_model(name, landmarks).encoding(rgb, location)
    except PhotoRejected as e:
        return e.reason


def probe_location(rgb):
    """Where the device path would encode a probe: its largest face, or None."""
    faces = engine.detect_faces(rgb, PROBE_MAX_SIDE)
    if not faces:
        # Dataset crops can be small; the device would see such a visitor from closer.
        faces = engine.detect_faces(rgb, PROBE_MAX_SIDE, upsample=2)
    return faces[0] if faces else None


def encode_all(model, enrol, probes, jitters, workers):
    """Enrolment templates and probe encodings; each photo is encoded once (bench/_work cache)."""
    landmarks = getattr(model, "landmarks", "large")
    key = f"{model.id}/{landmarks}"
    with ProcessPoolExecutor(max_workers=workers) as pool:
        enrolled = encoding_cache.cached_map(pool, _enrol_one, [p for _, p in enrol], "enrol",
                                             key, jitters, lambda p: (p, model.name, landmarks, jitters))
        probed = encoding_cache.cached_map(pool, _probe_one, [p for _, p in probes], "probe",
                                           key, 0, lambda p: (p, model.name, landmarks))
    return enrolled, probed


def build_gallery(model, enrol, encodings):
    """Gallery of accepted enrolments, and the set of people actually enrolled."""
    gallery, people, ids = Gallery(model), set(), {}
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


def _distance_table(model, gallery_items, probes, encodings, ids):
    """(probe labels, template owners, probe x template distances) in one numpy pass.
    A probe's label is its person's enrolled id, or 0 for someone not enrolled."""
    kept = [(ids.get(person, 0), e) for (person, _), e in zip(probes, encodings)
            if not isinstance(e, str)]
    labels = np.array([k for k, _ in kept], dtype=np.int64)
    owners = np.array([owner for owner, _ in gallery_items], dtype=np.int64)
    if not kept or not gallery_items:
        return labels, owners, np.zeros((len(labels), len(owners)))
    probe_matrix = np.stack([e for _, e in kept])
    templates = np.stack([t for _, t in gallery_items])
    return labels, owners, model.pairwise(probe_matrix, templates)


def probe_distances(model, gallery_items, probes, encodings, ids):
    """(mated, non-mated) from one distance table: every genuine probe to its own enrolled
    templates, and every probe to every enrolled template of another person."""
    labels, owners, distances = _distance_table(model, gallery_items, probes, encodings, ids)
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
    """Every threshold from the model's floor to past its ceiling, at four margins."""
    bounds, rows = gallery.model.bounds, []
    step = (bounds.threshold_ceiling - bounds.threshold_floor) / 8
    for threshold in np.arange(bounds.threshold_floor, bounds.threshold_ceiling + 2.5 * step, step / 2):
        for margin in (0.0, bounds.margin / 2, bounds.margin, bounds.margin * 5 / 3):
            policy = Policy(threshold=round(float(threshold), 3), margin=round(margin, 3))
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


def calibrated_policy(model, items, ceiling=None, margin=None, prior=None):
    """The registry's procedure on the enrolled templates alone: (policy with the measured
    threshold for this gallery, fixed; the curve it rests on). prior: a prior Curve measured
    on other faces (--prior), instead of the model's."""
    bounds = model.bounds
    owners = [owner for owner, _ in items]
    distances = calibration.enrolled_non_mated(model, owners, np.stack([e for _, e in items]))
    curve = calibration.measure(model, distances, len(set(owners)), prior=prior)
    threshold = calibration.threshold_for(curve, len(set(owners)), DEFAULT_TARGET_FPIR,
                                          ceiling or bounds.threshold_ceiling, bounds.threshold_floor)
    return Policy(threshold=threshold, margin=bounds.margin if margin is None else margin), curve


def run_models(root, choice, **options):
    """run_groups for each model --face-model names: the default model's figures at the top
    level (the fields other tools read), every model's under "models"."""
    names = model_names(choice)
    results = {name: run_groups(root, face_model(name, options.get("landmarks", "small")),
                                **{k: v for k, v in options.items() if k != "landmarks"})
               for name in names}
    top = dict(results[names[0]])
    if len(names) > 1:
        top["models"] = {name: _headline(r, with_groups=True) for name, r in results.items()}
    return top


def run_groups(root, model, jitters=1, workers=None, calibrate=False, enrol_photos=1,
               threshold=None, margin=None, fixed=False, prior=None):
    """Every group folder as a registry of its own; the top level is all groups together."""
    options = dict(jitters=jitters, workers=workers, calibrate=calibrate, enrol_photos=enrol_photos,
                   threshold=threshold, margin=margin, fixed=fixed, prior=prior)
    groups = group_folders(root)
    if not groups:
        return run(root, model, **options)
    result = run(_combined_root(root, groups), model, **options)
    result["dataset"] = os.path.abspath(root)
    result["groups"] = {g: _headline(run(os.path.join(root, g), model, **options)) for g in groups}
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


def read_prior(path, model):
    """A bench.prior JSON's `table` as a prior Curve of the model (so a registry is measured
    with a prior made from faces it does not hold)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if data.get("face_model", model.id) != model.id:
        raise ValueError(f"{path} was measured on {data['face_model']}, not {model.id}")
    return calibration.prior_curve(model, rates=tuple(float(v) for v in data["table"]))


def _headline(result, with_groups=False):
    keys = ("face_model", "policy", "correct", "wrong_person", "miss", "fpir", "tpir", "impostor_named",
            "genuine_probes", "impostor_probes", "enrolled", "calibration", "prior", "naive",
            "genuine_distances", "non_mated_distances", "best_point_on_this_data", "one_to_one",
            "duplicates", "tar_at_far") + (("groups",) if with_groups else ())
    out = {k: result[k] for k in keys if k in result}
    out["naive"] = {k: result["naive"][k] for k in ("tolerance", "correct", "wrong_person", "fpir", "tpir")}
    return out


def run(root, model, jitters=1, workers=None, calibrate=False, enrol_photos=1, threshold=None,
        margin=None, fixed=False, prior=None):
    enrol, genuine, impostor = dataset_plan(root, enrol_photos)
    probes = genuine + impostor
    enrolled, probed = encode_all(model, enrol, probes, jitters, workers or os.cpu_count())
    gallery, ids = build_gallery(model, enrol, enrolled)
    items = [(ids[p], e) for (p, _), e in zip(enrol, enrolled) if not isinstance(e, str)]
    genuine_d, distances = probe_distances(model, items, probes, probed, ids)
    prior_curve = read_prior(prior, model) if prior else calibration.prior_curve(model)
    ceiling = threshold if threshold is not None else model.bounds.threshold_ceiling
    # the prior's point for this gallery (a fixed --threshold as it is)
    policy = Policy(threshold=ceiling if fixed else calibration.threshold_for(
                        prior_curve, len(gallery), DEFAULT_TARGET_FPIR, ceiling, model.bounds.threshold_floor),
                    margin=model.bounds.margin if margin is None else margin)
    extra = {}
    if calibrate and items:
        prior_policy = policy
        policy, curve = calibrated_policy(model, items, ceiling, margin, prior_curve)
        prior_score = score(gallery, ids, probes, probed, lambda g, e: decide(g, e, prior_policy))
        extra["prior"] = {"threshold": prior_policy.threshold, **prior_score}
        extra["calibration"] = {
            "source": curve.source, "people": curve.people, "pairs": curve.pairs,
            "tail_slope": round(curve.slope, 2), "notes": curve.as_dict()["notes"],
            "threshold": policy.threshold,
            "fmr_upper_at_threshold": calibration.fmr_at(curve, policy.threshold)[1],
            "prior_fmr_at_threshold": calibration.fmr_at(prior_curve, policy.threshold)[1],
            "expected_fpir_bound": round(calibration.expected_fpir(curve, len(gallery),
                                                                   policy.threshold), 5)}
        extra["one_to_one"] = one_to_one(model, curve, genuine_d, distances)
        extra["duplicates"] = duplicate_check(model, curve, items, probes, probed, ids,
                                              policy.threshold)
    shipped = score(gallery, ids, probes, probed, lambda g, e: decide(g, e, policy))
    tolerance = model.naive_tolerance
    naive = score(gallery, ids, probes, probed, lambda g, e: naive_decide(g, e, tolerance))
    fmr, fmr_upper = measured_fmr(distances, policy.threshold)
    naive_fmr, _ = measured_fmr(distances, tolerance)
    rows = sweep(gallery, ids, probes, probed)
    return {
        "dataset": os.path.abspath(root), "face_model": model.id,
        "landmarks": getattr(model, "landmarks", "large"), "num_jitters": jitters,
        "enrol_photos": enrol_photos,
        "policy": {"threshold": policy.threshold, "max_threshold": ceiling,
                   "margin": policy.margin, "target_fpir": None if fixed else DEFAULT_TARGET_FPIR},
        **shipped, **extra,
        "enrol_rejected": sum(isinstance(e, str) for e in enrolled),
        "probes_without_face": sum(isinstance(e, str) for e in probed),
        "false_match_rate": round(fmr, 7), "non_mated_comparisons": int(distances.size),
        "false_match_rate_upper_95": fmr_upper and round(fmr_upper, 7),
        **at_gallery_sizes(model, prior_curve, ceiling, distances),
        "genuine_distances": spread(genuine_d), "non_mated_distances": spread(distances),
        "tar_at_far": tar_at_far(genuine_d, distances),
        "naive": {"tolerance": tolerance, **naive, "false_match_rate": round(naive_fmr, 7),
                  "expected_fpir_at_gallery_size": expected_fpir(naive_fmr)},
        "best_point_on_this_data": best_point(rows),
        "sweep": rows,
    }


def tar_at_far(genuine, impostor, rates=(1e-3, 1e-4)):
    """{FAR: (share of genuine pairs accepted, threshold)} at the distance where that share
    of non-mated pairs (probe x other people's templates) is accepted: the usual way to
    compare two models on the same photos."""
    if not genuine.size or not impostor.size:
        return None
    ordered = np.sort(impostor)
    out = {}
    for rate in rates:
        t = float(ordered[min(len(ordered) - 1, int(rate * len(ordered)))])
        out[f"{rate:g}"] = {"tar": round(float((genuine < t).mean()), 4), "threshold": round(t, 4)}
    return out


def one_to_one(model, curve, genuine, impostor):
    """The ID-number check: each probe compared with one claimed citizen's templates only.
    The calibrated point (recognition.calibration.one_to_one_threshold on the enrolled
    photos' curve) beside the naive one (the model's naive tolerance):
    the share of genuine probes accepted, and of impostor claims (a probe under another
    enrolled person's ID number) accepted: genuine and impostor are those claims' distances."""

    def at(t):
        return {"threshold": t, "genuine_accepted": calibration.share_within(genuine, t),
                "impostor_accepted": round(float((impostor <= t).mean()), 6) if impostor.size else None}
    bounds = model.bounds
    t = calibration.one_to_one_threshold(curve, calibration.ONE_TO_ONE_FMR,
                                         bounds.one_to_one_ceiling, bounds.threshold_floor)
    return {"target_fmr": calibration.ONE_TO_ONE_FMR, "genuine_claims": int(genuine.size),
            "impostor_claims": int(impostor.size), **at(t), "naive": at(model.naive_tolerance)}


DUPLICATE_BUDGET = 0.05   # the admin setting duplicates.review_budget's default


def duplicate_check(model, curve, items, probes, encodings, ids, greeting):
    """The import's fraud check on these photos: every probe imported under a new ID number
    is compared with every enrolled template. A genuine probe (a second photo of an enrolled
    person) should be held for review; a stranger's is a false flag. Threshold: the
    registry's own (calibration.duplicate_threshold on the enrolled photos' curve)."""
    n = len({owner for owner, _ in items})
    t = calibration.duplicate_threshold(curve, n, DUPLICATE_BUDGET, greeting,
                                        model.bounds.duplicate_ceiling)
    labels, _owners, table = _distance_table(model, items, probes, encodings, ids)
    nearest = table.min(axis=1) if table.size else np.empty(0)
    genuine, strangers = nearest[labels != 0], nearest[labels == 0]
    return {"threshold": t, "review_budget": DUPLICATE_BUDGET,
            "second_photos": int(genuine.size),
            "held": round(float((genuine <= t).mean()), 4) if genuine.size else None,
            "strangers": int(strangers.size),
            "false_flags_per_record": round(float((strangers <= t).mean()), 4) if strangers.size else None}


def measured_fmr(distances, threshold):
    """(rate, 95 % upper bound) of non-mated distances within threshold."""
    if not distances.size:
        return 0.0, None
    matches = int((distances <= threshold).sum())
    return matches / distances.size, fmr_upper_95(matches, int(distances.size))


def at_gallery_sizes(model, prior, ceiling, distances):
    """What to expect at 1k/10k/100k enrolled: the threshold the prior gives there, and the
    FPIR that the false-match rate measured at that threshold implies (and its upper bound)."""
    thresholds = {str(n): calibration.threshold_for(prior, n, DEFAULT_TARGET_FPIR, ceiling,
                                                    model.bounds.threshold_floor)
                  for n in GALLERY_SIZES}
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
    add_face_model_option(parser)
    parser.add_argument("--landmarks", choices=["small", "large"], default="small",
                        help="dlib's landmark predictor dlib's encoder aligns with (MobileFaceNet"
                             " always aligns from the 68 points)")
    parser.add_argument("--jitters", type=int, default=1, help="num_jitters at enrolment (dlib)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threshold", type=float, default=None,
                        help="the loosest threshold (default: the model's ceiling)")
    parser.add_argument("--margin", type=float, default=None, help="default: the model's margin")
    parser.add_argument("--calibrate", action="store_true",
                        help="choose the threshold from the enrolled photos' own non-mated distances"
                             " (as the registry does); the prior's point is printed as \"prior\"")
    parser.add_argument("--enrol-photos", type=int, default=1, metavar="K",
                        help="photos enrolled per person (the first K; the rest are probes)")
    parser.add_argument("--fixed", action="store_true",
                        help="use --threshold as is, without tightening it for the gallery size")
    parser.add_argument("--fold", metavar="K/N", default=None,
                        help="only the K-th of every N people (sorted by name)")
    parser.add_argument("--prior", metavar="PRIOR_JSON", default=None,
                        help="a bench.prior result whose table replaces the model's prior")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.dataset):
        parser.error(f"not a folder: {args.dataset}")
    if args.enrol_photos < 1:
        parser.error("--enrol-photos must be at least 1")
    if args.prior and args.face_model == "all":
        parser.error("--prior is measured on one model: name it with --face-model")
    try:
        if args.fold:
            args.dataset = fold_root(args.dataset, args.fold)
        if args.prior:
            read_prior(args.prior, face_model(args.face_model))
    except (ValueError, OSError, KeyError) as e:
        parser.error(str(e))
    json.dump(run_models(args.dataset, args.face_model, landmarks=args.landmarks,
                         jitters=args.jitters, workers=args.workers, calibrate=args.calibrate,
                         enrol_photos=args.enrol_photos, threshold=args.threshold,
                         margin=args.margin, fixed=args.fixed, prior=args.prior),
              sys.stdout, indent=1)
    print()


def add_face_model_option(parser):
    """--face-model, as every benchmark takes it."""
    parser.add_argument("--face-model", choices=[*models.names(), "all"], default=models.DEFAULT,
                        help="the embedding model (all: each on the same photos, in one run)")


if __name__ == "__main__":
    main()
