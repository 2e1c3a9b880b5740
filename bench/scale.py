"""1:N search and bulk import at province scale: the server's index against exact search.

    python -m bench.scale --templates N [--face-model mobilefacenet|dlib|all] [--queries 3000]
                          [--beams 0.0625/128,0.078/128] [--photos DIR] [--import-photos 120]

In one run, on N synthetic templates of the face model drawn like real ones (the mean and
covariance of real templates, bench/data/template_stats_<model>.npz, from bench.template_stats;
MobileFaceNet's draws are normalised, as its templates are unit vectors; isotropic noise
would be easier for neither method and unlike real faces):

  search_ms        median time of one probe through server.faceindex (the nearest 15 % of
                   its lists scanned through PQ codes proposes a short list, the model's exact
                   distances re-rank it, best + runner-up chosen as the devices do)
  exact_ms         median time of exact numpy matrix-vector search (distances + argmin) at N,
                   on --exact-queries probes
  exact_sort_ms    the project's former duplicate check at N (recognition.gallery.Gallery:
                   every distance, then a full sort), on a few probes
  recall_at_1      how often the index names the same citizen as exact search, over
                   recall_probes probes: second photos of enrolled people (an enrolled
                   template plus noise from the fitted within-person covariance, twice it, as
                   two photos each stray from the person's mean; re-normalised). The truth is
                   exact search over all N (one matrix product in blocks, its few nearest
                   re-ranked by the model's distance). 3,000 probes are what can show 0.999:
                   at 3 misses or fewer the 95 % upper bound of the miss rate is about 0.27 %
  beams            recall_at_1 and search_ms at other (share of lists scanned, re-ranked
                   rows) settings, on the same index and probes
  build_s          building the index over N templates
  index_load_s     a new process reading the index file (what a server pays once at start)
  memory           that process: peak resident memory (VmHWM) over the templates' own size
                   (N x dims x 4 bytes), after reading the file, answering probes and adding
                   --memory-adds templates (an import's worth); with the index's accounting
  import_*         the real import (quality gate, encoding in every core, duplicate check
                   against the index, writes) of --import-photos real photos into a SQLite
                   registry already holding 1,000 and then N synthetic citizens; photos/s
                   as a running server imports (its index already read)

--face-model all runs every model: the default model's figures at the top level, each
model's under "models". Prints JSON.
"""
import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from bench.accuracy import add_face_model_option, face_model, model_names
from bench.template_stats import stats_path
from db import open_db, transaction
from recognition.gallery import Gallery
from server import faceindex, faces
from server.importer import Settings, run_import

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DRAW_CHUNK = 200_000      # rows drawn at a time (the float64 draws of a million are 1.5 GB)
TRUTH_CHUNK = 50_000      # rows per block of the exact truth's matrix product
TRUTH_SHORT = 4           # nearest rows per block kept for the float64 re-rank


# --- synthetic templates -------------------------------------------------------------------

def template_stats(model):
    """The fitted statistics of the model's real templates; SystemExit if there are none."""
    path = stats_path(model.name)
    if not os.path.exists(path):
        raise SystemExit(f"{path} is missing: python -m bench.template_stats PHOTOS"
                         f" --face-model {model.name}")
    stats = dict(np.load(path))
    if str(stats["model"]) != model.id:
        raise SystemExit(f"{path} was fitted on {stats['model']}, not {model.id}: fit it again")
    return stats


def synthetic_templates(n, rng, stats):
    """n templates ~ N(mean, cov) of real ones, in float32 (drawn in chunks to bound memory),
    on the unit sphere when the model's templates are unit vectors."""
    dims = len(stats["mean"])
    factor = np.linalg.cholesky(stats["cov"] + 1e-9 * np.eye(dims))
    out = np.empty((n, dims), np.float32)
    for start in range(0, n, DRAW_CHUNK):
        z = rng.standard_normal((min(DRAW_CHUNK, n - start), dims))
        out[start:start + len(z)] = _shaped(stats["mean"] + z @ factor.T, stats)
    return out


def second_photos(matrix, q, rng, stats):
    """(rows, probes): q enrolled templates and a second 'photo' of each. Two photos of one
    person each stray from the person's mean by within_cov, so they differ by twice it
    (median distance then 0.56 on MobileFaceNet; real same-person pairs: 0.63-0.70)."""
    rows = rng.choice(len(matrix), size=q, replace=False)
    noise = rng.multivariate_normal(np.zeros(matrix.shape[1]), 2 * stats["within_cov"], size=q)
    return rows, _shaped(matrix[rows] + noise, stats)


def _shaped(vectors, stats):
    if stats["unit_length"]:
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


# --- the naive way and the truth ---------------------------------------------------------------

def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def exact_best(matrix, probe):
    """The naive best way: one matrix-vector pass and argmin (no sort)."""
    diff = matrix - probe
    return int(np.argmin(np.einsum("ij,ij->i", diff, diff)))


def exact_truth(model, matrix, probes):
    """(nearest row, its distance, the next row's distance) of each probe over every row.
    One matrix product a block of rows (|x|^2 - 2 x.p in float32), each block's few nearest
    kept, and those re-ranked by the model's own distance: exact search for 3,000 probes in
    seconds where one probe at a time took 11 minutes."""
    norms = np.einsum("ij,ij->i", matrix, matrix)
    short = []
    for start in range(0, len(matrix), TRUTH_CHUNK):
        block = slice(start, start + TRUTH_CHUNK)
        squared = norms[block][None, :] - 2 * probes @ matrix[block].T
        k = min(TRUTH_SHORT, squared.shape[1])
        short.append(start + np.argpartition(squared, k - 1, axis=1)[:, :k])
    short = np.hstack(short)
    best, distance, second = (np.empty(len(probes), t) for t in (np.int64, float, float))
    for i, rows in enumerate(short):
        d = model.distances(matrix[rows], probes[i])
        order = np.argsort(d, kind="stable")
        best[i], distance[i], second[i] = rows[order[0]], d[order[0]], d[order[1]]
    return best, distance, second


# --- the index -------------------------------------------------------------------------------

def measure_search(model, matrix, probes, truth, beams, exact_queries, sort_probes=3):
    """The index against the truth and against the naive ways, on the same probes."""
    citizens = np.arange(1, len(matrix) + 1, dtype=np.int64)   # as fill_registry stores them
    index, build_s = timed(faceindex.FaceIndex.from_arrays, model, citizens, matrix, citizens)
    shipped = answers(index, probes, citizens[truth], index.probed, index.candidates)
    exact = [timed(exact_best, matrix, p)[1] for p in probes[:exact_queries]]
    gallery = Gallery.from_arrays(model, citizens, matrix)
    sort_ms = [timed(gallery.nearest_two, p)[1] for p in probes[:sort_probes]]
    return index, {
        "search_ms": shipped["search_ms"],
        "exact_ms": round(1000 * statistics.median(exact), 2),
        "exact_sort_ms": round(1000 * statistics.median(sort_ms), 1),
        "recall_at_1": shipped["recall_at_1"],
        "recall_probes": len(probes),
        "misses": shipped["misses"],
        "build_s": round(build_s, 1),
        "index_kind": index_kind(index),
        "beams": [dict(probed=share, candidates=k,
                       **answers(index, probes, citizens[truth], share, k)) for share, k in beams],
    }


def index_kind(index):
    lists = index._lists
    if lists is None:
        return "exact numpy"
    codes = f"PQ {lists.code_size} bytes" if lists.code_size < index.model.dims * 4 else "flat"
    return (f"faiss IVF {lists.nlist} lists ({codes}), {index._probes()} scanned,"
            f" exact re-rank of {index.candidates}")


def answers(index, probes, truth_citizens, probed, candidates):
    """recall_at_1 and median ms of the index at one setting (put back after)."""
    shipped = index.probed, index.candidates
    index.probed, index.candidates = probed, candidates
    try:
        took, same = [], 0
        for probe, truth in zip(probes, truth_citizens):
            (best, _runner_up), seconds = timed(index.nearest_two, probe)
            took.append(seconds)
            same += int(best.citizen_id == truth)
    finally:
        index.probed, index.candidates = shipped
    return {"search_ms": round(1000 * statistics.median(took), 3),
            "recall_at_1": round(same / len(probes), 4), "misses": len(probes) - same}


def parse_beams(text):
    """'0.0625/128,0.2/128' -> [(0.0625, 128), (0.2, 128)]: share of lists, rows re-ranked"""
    try:
        return [(float(beam.split("/")[0]), int(beam.split("/")[1]))
                for beam in text.split(",") if beam]
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError("beams are share/candidates, comma separated") from None


# --- a process holding the index ---------------------------------------------------------------

def measure_memory(model, index, adds):
    """A new process reads the index file, answers probes and adds `adds` templates: its
    load time and peak memory (hold() below, in a child so that nothing of this run counts)."""
    folder = tempfile.mkdtemp(prefix="bench-scale-memory-")
    try:
        path = os.path.join(folder, faceindex.FILE)
        index.save(path)
        out = subprocess.run([sys.executable, "-m", "bench.scale", "--hold", path,
                              "--face-model", model.name, "--memory-adds", str(adds)],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def hold(path, model, adds):
    """In this process: read the index at path, answer probes, add templates, and report
    the peak resident memory that took (VmHWM reset to the baseline first, Linux)."""
    import faiss  # noqa: F401 -- loaded before the baseline: the library is not the index
    rng = np.random.default_rng(2)
    stats = template_stats(model)
    extra = synthetic_templates(adds, rng, stats)
    before = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                     # VmHWM := VmRSS
    index, load_s = timed(faceindex.FaceIndex.load, path, model)
    for probe in extra[:100]:
        index.nearest_two(probe)
    for n, vector in enumerate(extra):
        index.add(10**9 + n, vector, 10**9 + n)
    values = index.templates * model.dims * 4
    peak = (_status_kb("VmHWM") - before) * 1024
    held = (_status_kb("VmRSS") - before) * 1024
    accounted = index.memory()
    return {"index_load_s": round(load_s, 2),
            "memory": {"vectors_mb": round(values / 2**20, 1), "rss_peak_mb": round(peak / 2**20, 1),
                       "rss_ratio": round(peak / values, 3), "rss_held_ratio": round(held / values, 3),
                       "lists_mb": round(accounted["lists"] / 2**20, 1),
                       "rows_mb": round(accounted["rows"] / 2**20, 1), "added": adds}}


def _status_kb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


# --- the real import -------------------------------------------------------------------------

def fill_registry(db, model, matrix):
    """citizens 1..n with one template each (row i is template i + 1 of citizen i + 1), on a
    registry of the model. One executemany a chunk, not faces.add_template: that is two
    queries a row (the model check, then the insert), minutes at a million rows; face_model
    is set as add_template sets it."""
    stamp = "2026-01-01T00:00:00Z"
    with transaction(db):
        faces.start_on(db, model.name)
        for start in range(0, len(matrix), 50_000):
            chunk = range(start, min(start + 50_000, len(matrix)))
            db.executemany("INSERT INTO citizens (id, id_number, name, sync_seq, created_at,"
                           " updated_at) VALUES (?, ?, ?, 0, ?, ?)",
                           [(i + 1, f"S{i + 1:09d}", f"synthetic {i + 1}", stamp, stamp) for i in chunk])
            db.executemany("INSERT INTO face_templates (id, citizen_id, encoding, face_model,"
                           " created_at) VALUES (?, ?, ?, ?, ?)",
                           [(i + 1, i + 1, model.to_blob(matrix[i]), model.id, stamp) for i in chunk])


def photo_files(root, count):
    found = sorted(os.path.join(d, n) for d, _, names in os.walk(root) for n in names
                   if n.lower().endswith(IMAGE_SUFFIXES))
    if not found:
        raise SystemExit(f"no photos under {root}")
    return found[:count]


def measure_import(model, matrix, index, photos, workers):
    """photos/s of a real import into a registry holding len(matrix) citizens."""
    folder = tempfile.mkdtemp(prefix="bench-scale-")
    try:
        db = open_db(os.path.join(folder, "civic.db"))
        fill_registry(db, model, matrix)
        index_dir = os.path.join(folder, "faceindex")
        os.makedirs(index_dir)
        index.save(os.path.join(index_dir, faceindex.FILE))
        records, upload = os.path.join(folder, "RECORDS.csv"), os.path.join(folder, "upload")
        write_records(records, upload, photos)
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
        faceindex._HELD.pop(os.path.abspath(os.path.join(folder, "faceindex")), None)
        shutil.rmtree(folder, ignore_errors=True)


def write_records(records, upload, photos):
    os.makedirs(upload)
    with open(records, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id_number", "name", "phone", "photo"])
        for n, path in enumerate(photos):
            shutil.copy(path, os.path.join(upload, f"{n}.jpg"))
            writer.writerow([f"B{n:09d}", f"person {n}", "", f"{n}.jpg"])


# --- one model, every model --------------------------------------------------------------------

def run_model(model, args):
    rng = np.random.default_rng(args.seed)
    stats = template_stats(model)
    matrix, draw_s = timed(synthetic_templates, args.templates, rng, stats)
    _rows, probes = second_photos(matrix, args.queries, rng, stats)
    (truth, genuine, stranger), truth_s = timed(exact_truth, model, matrix, probes)
    index, search = measure_search(model, matrix, probes, truth, args.beams, args.exact_queries)
    report = {"face_model": model.id, "dims": model.dims, "templates": args.templates,
              "queries": args.queries, **search, "draw_s": round(draw_s, 1),
              "truth_s": round(truth_s, 1),
              "probe_distances": {"nearest_median": round(float(np.median(genuine)), 3),
                                  "next_median": round(float(np.median(stranger)), 3)}}
    report.update(measure_memory(model, index, args.memory_adds))
    if args.import_photos:
        report.update(import_figures(model, matrix, index, args))
    return report


def import_figures(model, matrix, index, args):
    photos = photo_files(args.photos, args.import_photos)
    small = faceindex.FaceIndex.from_arrays(model, np.arange(1, 1001), matrix[:1000],
                                            np.arange(1, 1001))
    at_1k = measure_import(model, matrix[:1000], small, photos, args.workers)
    at_n = measure_import(model, matrix, index, photos, args.workers)
    return {"import_photos": len(photos), "import_at_1k": at_1k, "import_at_n": at_n,
            "import_ratio": round(at_n["photos_per_s"] / at_1k["photos_per_s"], 3)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", type=int, default=100_000)
    add_face_model_option(parser)
    parser.add_argument("--queries", type=int, default=3000,
                        help="probes for recall_at_1 (3,000 can show 0.999)")
    parser.add_argument("--exact-queries", type=int, default=100,
                        help="probes timed one by one through exact numpy search")
    parser.add_argument("--beams", type=parse_beams, default=[],
                        help="other settings to measure, share of lists scanned / rows re-ranked,"
                             " e.g. 0.0625/128,0.2/128")
    parser.add_argument("--memory-adds", type=int, default=1000,
                        help="templates the holding process adds after reading the file")
    parser.add_argument("--photos", default=os.path.join("..", "shared", "faces", "calibration"))
    parser.add_argument("--import-photos", type=int, default=120)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hold", help=argparse.SUPPRESS)   # the memory child (measure_memory)
    args = parser.parse_args(argv)
    if args.hold:
        print(json.dumps(hold(args.hold, face_model(args.face_model), args.memory_adds)))
        return
    reports = {name: run_model(face_model(name), args) for name in model_names(args.face_model)}
    first = reports[model_names(args.face_model)[0]]
    print(json.dumps({**first, "models": reports} if len(reports) > 1 else first, indent=2))


if __name__ == "__main__":
    main()
