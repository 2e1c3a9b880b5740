"""1:N search and bulk import at province scale: the server's index against exact search.

    python -m bench.scale --templates N [--queries 300] [--photos DIR] [--import-photos 120]

In one run, on N synthetic templates drawn like real ones (the mean and covariance of dlib
templates fitted on real photos, bench/data/template_stats.npz; isotropic noise would be
easier for neither method and unlike real faces):

  search_ms        median time of one probe through server.faceindex (HNSW proposes a short
                   list, exact distances re-rank it, best + runner-up chosen as the devices do)
  exact_ms         median time of exact numpy matrix-vector search (distances + argmin) at N
  exact_sort_ms    the project's former duplicate check at N (recognition.gallery.Gallery:
                   every distance, then a full sort), on a few probes
  recall_at_1      how often the index names the same citizen as exact search, on probes that
                   are noisy copies of enrolled templates (noise drawn from the fitted
                   within-person covariance: a second photo of someone enrolled)
  build_s          building the index over N templates
  import_*         the real import (quality gate, encoding in every core, duplicate check
                   against the index, writes) of --import-photos real photos into a SQLite
                   registry already holding 1,000 and then N synthetic citizens; photos/s
                   as a running server imports (its index already read: index_load_s is
                   what the first import after a start pays once, reading the file)

Prints JSON.
"""
import argparse
import csv
import json
import os
import shutil
import statistics
import tempfile
import time

import numpy as np

from db import open_db, transaction
from recognition.gallery import Gallery
from server import faceindex
from server.importer import Settings, run_import

STATS = os.path.join(os.path.dirname(__file__), "data", "template_stats.npz")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def synthetic_templates(n, rng, stats):
    """n templates ~ N(mean, cov) of real ones, in float32 (drawn in chunks to bound memory)."""
    factor = np.linalg.cholesky(stats["cov"] + 1e-9 * np.eye(len(stats["mean"])))
    out = np.empty((n, len(stats["mean"])), np.float32)
    for start in range(0, n, 200_000):
        z = rng.standard_normal((min(200_000, n - start), len(stats["mean"])))
        out[start:start + len(z)] = stats["mean"] + z @ factor.T
    return out


def noisy_copies(matrix, q, rng, stats):
    """(rows, probes): q enrolled templates and a second 'photo' of each."""
    rows = rng.choice(len(matrix), size=q, replace=False)
    noise = rng.multivariate_normal(np.zeros(matrix.shape[1]), stats["within_cov"], size=q)
    return rows, (matrix[rows] + noise).astype(np.float32)


def timed(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - started


def exact_best(matrix, probe):
    """The naive best way: one matrix-vector pass and argmin (no sort)."""
    diff = matrix - probe
    return int(np.argmin(np.einsum("ij,ij->i", diff, diff)))


def measure_search(matrix, probes, sort_probes=3):
    citizens = np.arange(1, len(matrix) + 1, dtype=np.int64)   # as fill_registry stores them
    index, build_s = timed(faceindex.FaceIndex.from_arrays, citizens, matrix, citizens)
    search, exact, same = [], [], 0
    for probe in probes:
        (best, _runner_up), took = timed(index.nearest_two, probe)
        search.append(took)
        truth, took = timed(exact_best, matrix, probe)
        exact.append(took)
        same += best.citizen_id == citizens[truth]
    gallery = Gallery.from_arrays(citizens, matrix)
    sort_ms = [timed(gallery.nearest_two, p)[1] for p in probes[:sort_probes]]
    return index, {
        "search_ms": round(1000 * statistics.median(search), 3),
        "exact_ms": round(1000 * statistics.median(exact), 2),
        "exact_sort_ms": round(1000 * statistics.median(sort_ms), 1),
        "recall_at_1": round(same / len(probes), 4),
        "build_s": round(build_s, 1),
        "index_kind": "exact numpy" if index._graph is None else
        f"faiss HNSW M={faceindex.HNSW_M} efConstruction={faceindex.EF_CONSTRUCTION}"
        f" efSearch={faceindex.EF_SEARCH}, exact re-rank of {faceindex.CANDIDATES}",
    }


def fill_registry(db, matrix):
    """citizens 1..n with one template each (row i is template i + 1 of citizen i + 1)."""
    stamp = "2026-01-01T00:00:00Z"
    with transaction(db):
        for start in range(0, len(matrix), 50_000):
            chunk = range(start, min(start + 50_000, len(matrix)))
            db.executemany("INSERT INTO citizens (id, id_number, name, sync_seq, created_at,"
                           " updated_at) VALUES (?, ?, ?, 0, ?, ?)",
                           [(i + 1, f"S{i + 1:09d}", f"synthetic {i + 1}", stamp, stamp) for i in chunk])
            db.executemany("INSERT INTO face_templates (id, citizen_id, encoding, created_at)"
                           " VALUES (?, ?, ?, ?)",
                           [(i + 1, i + 1, matrix[i].tobytes(), stamp) for i in chunk])


def photo_files(root, count):
    found = sorted(os.path.join(d, n) for d, _, names in os.walk(root) for n in names
                   if n.lower().endswith(IMAGE_SUFFIXES))
    if not found:
        raise SystemExit(f"no photos under {root}")
    return found[:count]


def measure_import(matrix, index, photos, workers):
    """photos/s of a real import into a registry holding len(matrix) citizens."""
    folder = tempfile.mkdtemp(prefix="bench-scale-")
    try:
        db = open_db(os.path.join(folder, "civic.db"))
        fill_registry(db, matrix)
        index_dir = os.path.join(folder, "faceindex")
        os.makedirs(index_dir)
        index.save(os.path.join(index_dir, faceindex.FILE))
        records, upload = os.path.join(folder, "RECORDS.csv"), os.path.join(folder, "upload")
        os.makedirs(upload)
        with open(records, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["id_number", "name", "phone", "photo"])
            for n, path in enumerate(photos):
                shutil.copy(path, os.path.join(upload, f"{n}.jpg"))
                writer.writerow([f"B{n:09d}", f"person {n}", "", f"{n}.jpg"])
        settings = Settings(photos_dir=os.path.join(folder, "photos"), id_number_rule="any",
                            workers=workers, index_dir=index_dir)
        os.makedirs(settings.photos_dir)
        # A server process reads the index file once and keeps it between imports: that
        # first read is reported apart, the import is timed as every later one runs.
        _index, load_s = timed(faceindex.open_index, db, index_dir)
        faceindex.release(index_dir, _index)
        result, took = timed(run_import, db, records, upload, None, settings)
        db.close()
        return {"photos_per_s": round(len(photos) / took, 2), "seconds": round(took, 1),
                "index_load_s": round(load_s, 1), "counts": result.counts("records")}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--photos", default=os.path.join("..", "shared", "faces", "calibration"))
    parser.add_argument("--import-photos", type=int, default=120)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    stats = np.load(STATS)
    matrix, draw_s = timed(synthetic_templates, args.templates, rng, stats)
    _rows, probes = noisy_copies(matrix, args.queries, rng, stats)
    index, search = measure_search(matrix, probes)
    report = {"templates": args.templates, "queries": args.queries, **search,
              "draw_s": round(draw_s, 1)}
    if args.import_photos:
        photos = photo_files(args.photos, args.import_photos)
        small = matrix[:1000]
        small_index = faceindex.FaceIndex.from_arrays(np.arange(1, 1001), small, np.arange(1, 1001))
        at_1k = measure_import(small, small_index, photos, args.workers)
        at_n = measure_import(matrix, index, photos, args.workers)
        report.update(import_photos=len(photos), import_at_1k=at_1k, import_at_n=at_n,
                      import_ratio=round(at_n["photos_per_s"] / at_1k["photos_per_s"], 3))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
