"""Enrolment speed: the project's import path against the naive face_recognition way.

    python -m bench.enroll PHOTOS_DIR [--face-model mobilefacenet|dlib|all] [--count 60]
                           [--workers N] [--max-megapixels 1.2]

Every image under PHOTOS_DIR (recursively) is read into memory; the list is repeated until it
holds --count photos. Then, in one run:

  project          server.importer's Encoder: recognition.images.load_image (EXIF, size
                   limits) + recognition.quality.enrolment_template (detection on a copy
                   scaled to 1000 px, exactly-one-face, size and sharpness gate, the face
                   model's alignment and encoding) in --workers spawned processes; pool
                   start-up reported apart as startup_s
  project_small    the same on the photos up to --max-megapixels only (the target:
                   >= 20 photos/s for photos up to about 1 MP)
  project_1_worker the project path in this one process (what the second core adds)
  naive            face_recognition.load_image_file + face_encodings on the full-resolution
                   image, one process; a photo "passes" when exactly one face is encoded

--face-model all runs the project path once per face model on the same photos: the default
model's figures at the top level, each model's under "models". Prints JSON. Photos/s are
wall-clock, so other work on the machine lowers them all alike;
cpu_s_per_photo (single-process runs) and idle_estimate_photos_per_s (cores / CPU seconds per
photo) say what the same code does on a machine with nothing else running.
"""
import argparse
import collections
import io
import json
import os
import sys
import time

from PIL import Image

from bench import accuracy
from server.importer import Encoder

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
TARGET_PHOTOS_PER_S = 20.0


def image_files(root):
    """Every image file under root, sorted."""
    found = []
    for dirpath, _, names in os.walk(root):
        found += [os.path.join(dirpath, n) for n in names if n.lower().endswith(IMAGE_SUFFIXES)]
    return sorted(found)


def repeated(items, count):
    """items repeated (in order) until there are count of them."""
    if not items:
        return []
    return [items[i % len(items)] for i in range(max(count, len(items)))]


def megapixels(data):
    with Image.open(io.BytesIO(data)) as img:
        return img.size[0] * img.size[1] / 1e6


def _ready(_):
    """A pool task that holds its worker briefly, so every worker starts and warms up."""
    time.sleep(0.2)
    return os.getpid()


def start_encoder(model, workers):
    """(encoder, seconds until every worker process has loaded the models)."""
    started = time.perf_counter()
    encoder = Encoder(workers, model)
    if encoder.pool is not None:
        pids = set()
        while len(pids) < workers:
            pids |= set(encoder.pool.map(_ready, range(workers)))
    else:
        list(encoder.map([b""]))  # loads nothing, but imports the engine modules
        from recognition import engine
        engine.warm_up()
        model.warm_up()
    return encoder, time.perf_counter() - started


def run_project(model, photos, workers):
    """Throughput of the project's enrolment path over photos (list of bytes)."""
    encoder, startup = start_encoder(model, workers)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        results = list(encoder.map(photos))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        encoder.close()
    reasons = collections.Counter(reason for _, _, reason in results if reason)
    extra = {"face_model": model.id, "workers": workers, "startup_s": round(startup, 2)}
    if workers == 1:  # the work ran in this process, so its CPU time is the cost per photo
        extra["cpu_s_per_photo"] = round(cpu / len(photos), 3)
    return _numbers(len(photos), seconds, len(photos) - sum(reasons.values()), reasons, **extra)


def run_naive(paths):
    """Throughput of face_recognition on the full-resolution image, one process."""
    import face_recognition
    face_recognition.face_encodings(face_recognition.load_image_file(paths[0]))  # load models
    started, cpu = time.perf_counter(), time.process_time()
    reasons = collections.Counter()
    for path in paths:
        encodings = face_recognition.face_encodings(face_recognition.load_image_file(path))
        if len(encodings) != 1:
            reasons[f"{len(encodings)} faces found"] += 1
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return _numbers(len(paths), seconds, len(paths) - sum(reasons.values()), reasons, workers=1,
                    cpu_s_per_photo=round(cpu / len(paths), 3))


def _numbers(count, seconds, accepted, reasons, **extra):
    return {"photos": count, "seconds": round(seconds, 2),
            "photos_per_s": round(count / seconds, 2) if seconds else None,
            "accepted": accepted, "rejected": count - accepted, "reasons": dict(reasons), **extra}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("photos_dir")
    accuracy.add_face_model_option(parser)
    parser.add_argument("--count", type=int, default=60, help="photos per run (the list is repeated)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-megapixels", type=float, default=1.2,
                        help="size limit of the photos in the project_small run")
    args = parser.parse_args(argv)
    paths = image_files(args.photos_dir)
    if not paths:
        sys.exit(f"no images under {args.photos_dir}")
    data = {p: open(p, "rb").read() for p in paths}
    small = [p for p in paths if megapixels(data[p]) <= args.max_megapixels]
    run_paths, small_paths = repeated(paths, args.count), repeated(small, args.count)
    runs = {name: project_runs(accuracy.face_model(name), [data[p] for p in run_paths],
                               [data[p] for p in small_paths], args.workers)
            for name in accuracy.model_names(args.face_model)}
    report = {
        "photos_dir": os.path.abspath(args.photos_dir), "distinct_files": len(paths),
        "distinct_small_files": len(small), "max_megapixels": args.max_megapixels,
        "cpu_count": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2),
        **next(iter(runs.values())),
        "naive": run_naive(run_paths),
    }
    if len(runs) > 1:
        report["models"] = runs
    report["speedup_vs_naive"] = round(report["project"]["photos_per_s"] / report["naive"]["photos_per_s"], 2)
    # What the machine could do with every core free: other work on it lowers the wall-clock
    # numbers above but hardly the CPU seconds a photo costs.
    report["idle_estimate_photos_per_s"] = round(
        min(args.workers, os.cpu_count() or 1) / report["project_1_worker"]["cpu_s_per_photo"], 1)
    if small:
        report["target_photos_per_s"] = TARGET_PHOTOS_PER_S
        report["meets_target"] = report["project_small"]["photos_per_s"] >= TARGET_PHOTOS_PER_S
    print(json.dumps(report, indent=2))


def project_runs(model, photos, small, workers):
    """The project path of one face model: all photos, the small ones, and on one core."""
    return {"project": run_project(model, photos, workers),
            "project_small": run_project(model, small, workers) if small else None,
            "project_1_worker": run_project(model, photos, 1)}


if __name__ == "__main__":
    main()
