"""The server looks at the visitor itself before a case file opens, in worker processes.

A greeting is a device's claim. A stolen device token holds every template of its gallery
and could post "I greeted citizen N" with any picture, report a blink, and read N's case
summary. So before a case file opens the server finds the face in the session's snapshot,
encodes it with the engine the devices use, and compares it 1:1 with the claimed citizen's
templates under the registry's calibrated 1:1 distance (the ID-number check's, never looser
than the admin's ceiling for it). Measured once per session and kept in
sessions.snapshot_distance (infinite: no face in the snapshot). A forged greeting then needs
that citizen's face, not only a token. The device sends the frame of the visit that best
matched the citizen it named, so one frame stands for the evidence of several.

Face work never runs in a request thread. dlib's detector and landmarks hold Python's global
interpreter lock for the whole face (tens of milliseconds), so while one case file opened,
every other request of the process waited: a 1 ms page took 85 ms beside it. The snapshot
check, the blink evidence (server/evidence.py) and the ID-number crop (server/identify.py)
run in_pool(): in a pool of FACE_WORKERS worker processes, each loading the models once. A
request waits for its own face only, at most FACE_TIMEOUT_S, and is then answered 503 with
Retry-After (FaceBusy), never left hanging.
"""
import atexit
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

from flask import current_app, has_app_context

from db import transaction
from recognition import PhotoRejected, engine, models
from recognition.images import load_image

from . import faces
from .limits import TooFast

SNAPSHOT_DETECT_SIDE = 640     # devices send a face crop (a few hundred pixels) or a frame
START_TIMEOUT_S = 60.0         # a new pool's first worker: spawn, imports, models (~1 s idle)
BUSY = "the server is busy looking at other faces; try again shortly"
log = logging.getLogger(__name__)


def snapshot_face(model, path, max_bytes, max_pixels):
    """The encoding (by the face model) of the largest face in a stored snapshot (a path, or
    the JPEG's bytes), or None when it shows none or none the model can align.
    OSError when the file cannot be read (then nothing is concluded about the face);
    FaceBusy when the face-work pool did not get to it in time.

    A device's crop is the face with 0.6 of its size around it, at most 800 px: the face
    fills a third of it or more, so the cheap pass finds it and the finer one (upsample 1,
    faces down to ~40 px in a whole frame) is the most a picture without a face costs."""
    return in_pool(_snapshot_face, model.id, path, max_bytes, max_pixels)


def _snapshot_face(model_id, path, max_bytes, max_pixels):
    """snapshot_face's work, in a face worker (arguments that pickle: the model by id)."""
    try:
        rgb = load_image(path, max_bytes=max_bytes, max_pixels=max_pixels)
    except PhotoRejected:
        return None
    found = engine.detect_faces(rgb, SNAPSHOT_DETECT_SIDE, upsample=0) \
        or engine.detect_faces(rgb, SNAPSHOT_DETECT_SIDE, upsample=1)
    return models.get(model_id).encodings(rgb, found[:1])[0] if found else None


def snapshot_distance(db, row, citizen_id, looking=None):
    """How far the face in the session's snapshot is from the citizen's templates (inf when
    there is no face or no template); measured on first ask (or by `looking`, the look
    start_snapshot() began) and stored with the session. A snapshot that cannot be read now
    (a disk error) counts as no match and is not stored. A distance is the registry's face
    model's: one measured on a model the registry has since left is not kept."""
    if row["snapshot_distance"] is not None:
        return row["snapshot_distance"]
    looking = looking or start_snapshot(row, faces.active(db))
    try:
        encoding = looking.results()[0]
    except OSError:
        return math.inf
    model = looking.model
    distance = math.inf if encoding is None else faces.best_distance(db, citizen_id, encoding, model)
    with transaction(db):
        if faces.active_id(db) == model.id:
            db.execute("UPDATE sessions SET snapshot_distance = ? WHERE id = ?", [distance, row["id"]])
    return distance


def start_snapshot(row, model):
    """The look at a session's snapshot, begun now in the pool (Started): a blink's report
    begins it beside its crops, so the case file asked for next finds the distance stored."""
    from .api import SNAPSHOT_MAX_BYTES, SNAPSHOT_MAX_PIXELS
    path = os.path.join(current_app.config["SNAPSHOTS_DIR"], row["snapshot_path"])
    look = started([(_snapshot_face, (model.id, path, SNAPSHOT_MAX_BYTES, SNAPSHOT_MAX_PIXELS))])
    look.model = model        # the distance is measured against this model's templates
    return look


# --- the face-work pool -------------------------------------------------------------------

class FaceBusy(TooFast):
    """503: the face-work pool did not finish this request's face in FACE_TIMEOUT_S (too many
    faces queued, or a worker died). A TooFast, so its answer carries Retry-After (the one
    error shape, server/security.py) and a device waits, as after a 429."""

    def __init__(self, retry_after):
        super().__init__(BUSY, retry_after)
        self.status = 503


def in_pool(fn, *args):
    """fn(*args) in a worker of this process's face-work pool, waiting at most FACE_TIMEOUT_S
    (FaceBusy past it). fn and args must pickle: a module-level function, models by id.
    Outside an app (a bench, a command's own code) or with FACE_WORKERS 0 it runs here."""
    return started([(fn, args)]).results()[0]


def in_pool_each(fn, calls):
    """[fn(*args) for args in calls], spread over the pool's workers and waited for
    together (FACE_TIMEOUT_S for them all); in this thread where in_pool would run here."""
    return started([(fn, args) for args in calls]).results()


def started(jobs):
    """Faces [(fn, args)] handed to the pool now, to be waited for later (Started.results()):
    a request with faces of two kinds (a blink's crops and the visit's snapshot) waits for
    the slowest of them, not for one kind after the other."""
    workers = int(current_app.config["FACE_WORKERS"] or 0) if has_app_context() else 0
    if workers <= 0:
        return Started(None, jobs, 0)
    config = current_app.config   # the environment gives strings
    return Started(pool_for(workers, config["FACE_MODEL"]), jobs, float(config["FACE_TIMEOUT_S"]))


class Started:
    """Faces handed to a pool (or, without one, to be looked at here when asked for)."""

    def __init__(self, pool, jobs, timeout):
        self.pool, self.jobs = pool, jobs
        self.futures = pool.submit(jobs) if pool else None
        self.timeout, self.deadline = timeout, time.monotonic() + timeout

    def results(self):
        """Their results in order; FaceBusy when the pool did not finish them in time."""
        if self.pool is None:
            return [fn(*args) for fn, args in self.jobs]
        return self.pool.wait(self.futures, self.deadline, self.timeout)

    def cancel(self):
        """Those not begun are dropped: no worker spends time on a face no one waits for."""
        for future in self.futures or ():
            future.cancel()


class FacePool:
    """`workers` spawned processes that each load dlib's models and the face model once.

    Spawned, not forked: the pool starts from a request thread of a threaded server, and a
    fork copies whatever lock another thread holds at that moment."""

    def __init__(self, workers, model_name):
        self.workers = workers
        self.executor = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_start, initargs=(os.getpid(), model_name))

    def start(self):
        """Spawn every worker now and wait for the first to be ready (START_TIMEOUT_S): the
        first face of a new pool should not be refused for the models' loading time."""
        try:
            ready = [self.executor.submit(os.getpid) for _ in range(self.workers)]
            ready[0].result(START_TIMEOUT_S)
        except BaseException:
            self.executor.shutdown(wait=False, cancel_futures=True)
            raise
        return self

    def submit(self, jobs):
        return [self.executor.submit(fn, *args) for fn, args in jobs]

    def wait(self, futures, deadline, timeout):
        try:
            return [f.result(max(0.0, deadline - time.monotonic())) for f in futures]
        except FutureTimeout:
            for future in futures:
                future.cancel()     # those still queued: no worker spends time on them
            raise FaceBusy(timeout)

    def close(self):
        self.executor.shutdown(wait=True, cancel_futures=True)


_pools = {}                 # (pid, workers, model name) -> FacePool
_pools_lock = threading.Lock()


def pool_for(workers, model_name):
    """This process's pool of that size, started on first use. One per process and
    configuration, not per app: tests make hundreds of apps in one process. A pool found
    broken (a worker killed) is replaced, and this request is answered FaceBusy."""
    key = (os.getpid(), workers, model_name)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            try:
                pool = _pools[key] = FacePool(workers, model_name).start()
            except (BrokenProcessPool, FutureTimeout) as e:
                log.error("the face-work pool did not start: %r", e)
                raise FaceBusy(5)
    return _Guarded(key, pool)


class _Guarded:
    """A pool's submit() and wait() that drop a broken pool so the next request starts a new one."""

    def __init__(self, key, pool):
        self.key, self.pool = key, pool

    def submit(self, jobs):
        try:
            return self.pool.submit(jobs)
        except BrokenProcessPool:
            self._drop()

    def wait(self, futures, deadline, timeout):
        try:
            return self.pool.wait(futures, deadline, timeout)
        except BrokenProcessPool:
            self._drop()

    def _drop(self):
        log.error("a face worker died; the face-work pool starts again")
        with _pools_lock:
            if _pools.get(self.key) is self.pool:
                del _pools[self.key]
        self.pool.executor.shutdown(wait=False, cancel_futures=True)
        raise FaceBusy(1)


@atexit.register
def shutdown():
    """Stop this process's face workers (at exit; tests call it to leave none behind)."""
    with _pools_lock:
        mine = [key for key in _pools if key[0] == os.getpid()]
        pools = [_pools.pop(key) for key in mine]
    for pool in pools:
        pool.close()


def _worker_start(parent, model_name):
    """A face worker's start: follow the server process out, then load the models."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is the server's to handle
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    engine.warm_up()
    models.get(model_name).warm_up()


def _exit_with(parent):
    """End this worker when the server process that started it is gone (killed with
    SIGKILL, its atexit never ran). Polled: Linux's parent-death signal follows the thread
    that started the worker, and a server's request thread may end while the server lives."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
