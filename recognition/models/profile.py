"""What a face model is: its file, how it encodes a face, and how to read its distances.

Distances are Euclidean between templates (both shipped models compare that way: dlib's
templates as they come, MobileFaceNet's after L2 normalisation, where the distance is
sqrt(2 - 2 cos) and so orders pairs exactly as cosine similarity does). The search index,
the calibration and the devices all call distance()/distances() of the model they hold.
"""
import functools
import hashlib
import json
import math
import os
import threading
from dataclasses import dataclass

import numpy as np

from ..errors import PhotoRejected


class ModelFileError(RuntimeError):
    """A model file is missing, truncated or not the file its profile names (one line)."""


class UnknownModel(LookupError):
    """Stored data or a server names a model this code does not hold."""

    def __init__(self, model_id):
        from . import names
        super().__init__(f"unknown face model {model_id!r} (this code has: {', '.join(names())})")
        self.model_id = model_id


@dataclass(frozen=True)
class Bounds:
    """The distances that mean something for one model, each measured on its own templates."""
    threshold_floor: float       # below this nobody is greeted anyway: never tighten further
    threshold_ceiling: float     # the loosest greeting threshold by default (policy.threshold)
    threshold_range: tuple       # (low, high) an admin may set policy.threshold to
    margin: float                # best citizen at least this much closer than the runner-up
    margin_range: tuple          # (low, high) an admin may set it to
    one_to_one_ceiling: float    # the ID-number check's loosest distance by default
    one_to_one_range: tuple      # (low, high) an admin may set it to
    duplicate_ceiling: float     # the fraud check never flags further than this
    same_face: float             # the greeter: one face's frames stay within this of each other
    max_reported: float          # a distance a device reports above this is junk
    grid: tuple                  # (start, stop, step) of the false-match curve
    histogram_step: float        # width of the histograms' bins ...
    histogram_max: float         # ... from 0 to this (farther distances count in the last bin)
    tick: float                  # the charts' tick spacing on the distance axis


class FaceModel:
    """One face embedding model. Subclasses set the class attributes and _encode()."""

    name = ""                    # what FACE_MODEL and `reencode --model` call it
    title = ""                   # for people: the README, the admin pages
    dims = 0
    file = ""                    # the model file, inside the repository or an installed package
    sha256 = ""
    alignment = ""               # how the face is cut out before encoding (for people)
    bounds = None                # Bounds
    max_tail_slope = 0.0         # decades of FMR per unit distance the carry-down may assume
    batch = 1                    # faces a call of the network takes (a fixed input is padded)
    naive_tolerance = 0.0        # the benchmarks' naive baseline: nearest neighbour within this

    def __init__(self):
        self._lock = threading.Lock()     # one network per process; calls take turns

    # --- identity and the file ----------------------------------------------------------

    @property
    def id(self):
        """The id every stored template, distance and index names: the model's name and
        the first 12 hex digits of its file's sha256 (another file is another model)."""
        return f"{self.name}-{self.sha256[:12]}"

    def check_file(self):
        """Raise ModelFileError unless the model file exists and has the expected sha256."""
        _check_file(self.file, self.sha256)

    # --- encoding -------------------------------------------------------------------------

    def encodings(self, rgb, locations, jitters=1):
        """One float32 template (dims,) per face location (top, right, bottom, left) in the
        RGB image, None for a face that cannot be aligned (its landmarks do not fit a
        frontal face). jitters > 1 (dlib only) averages jittered crops: steadier, slower."""
        return [None if isinstance(v, str) else v for v in self._vectors(rgb, locations, jitters)]

    def encoding(self, rgb, location, jitters=1):
        """The template of one face; PhotoRejected (with the reason) when it cannot be aligned."""
        vector = self._vectors(rgb, [location], jitters)[0]
        if isinstance(vector, str):
            raise rejected_alignment(vector)
        return vector

    def _vectors(self, rgb, locations, jitters):
        """Per location a float32 template, or the reason (a str) it could not be made."""
        locations = list(locations)
        if not locations:
            return []
        net = self._loaded()
        return [v if isinstance(v, str) else np.asarray(v, np.float32)
                for v in self._encode(net, rgb, locations, jitters)]

    def warm_up(self):
        """Load the network now (the first visitor should not wait for it)."""
        self._loaded()

    def _loaded(self):
        return _load(self)

    def _open(self):
        """Build the network from self.file (called once, after the file was checked)."""
        raise NotImplementedError

    def _encode(self, net, rgb, locations, jitters):
        """Per location a template, or the reason (a str) the face could not be aligned."""
        raise NotImplementedError

    # --- distances ------------------------------------------------------------------------

    def distance(self, a, b):
        """The distance between two templates of this model."""
        return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))

    def distances(self, templates, probe):
        """Distances from probe to each row of templates (n x dims), as float64."""
        templates = np.asarray(templates, np.float64).reshape(-1, self.dims)
        return np.linalg.norm(templates - np.asarray(probe, np.float64).reshape(1, self.dims), axis=1)

    def rowwise(self, a, b):
        """Distances between a[i] and b[i] for every row i, in float32: the calibration samples
        3 million pairs of a large registry this way, and float64 took twice as long for
        differences far below the curve's 0.005 grid."""
        diff = np.asarray(a, np.float32) - np.asarray(b, np.float32)
        return np.sqrt(np.einsum("ij,ij->i", diff, diff))

    def pairwise(self, a, b):
        """The len(a) x len(b) matrix of distances, in one matrix product."""
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        squared = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2.0 * a @ b.T
        return np.sqrt(np.clip(squared, 0, None))

    def mean(self, vectors):
        """The template that stands for several of one face (the evidence rule averages a
        track's frames): their mean."""
        return np.mean(np.asarray(vectors, np.float32), axis=0)

    def plausible(self, distance):
        """Whether a distance a device reported can be one of this model's (finite, 0..max)."""
        return isinstance(distance, (int, float)) and not isinstance(distance, bool) \
            and math.isfinite(distance) and 0 <= distance <= self.bounds.max_reported

    # --- stored templates -----------------------------------------------------------------

    def to_blob(self, encoding):
        """Bytes for one template (dims little-endian float32)."""
        vector = np.asarray(encoding, dtype="<f4").reshape(-1)
        if vector.shape != (self.dims,):
            raise ValueError(f"a {self.name} template has {self.dims} values, not {vector.size}")
        return vector.tobytes()

    def from_blob(self, blob):
        """The template stored by to_blob; ValueError for another size (another model's)."""
        if blob is None or len(blob) != self.dims * 4:
            raise ValueError(f"stored face template is not a {self.name} template")
        return np.frombuffer(bytes(blob), dtype="<f4").astype(np.float32)

    # --- the false-match curve ------------------------------------------------------------

    @property
    def grid(self):
        start, stop, step = self.bounds.grid
        return tuple(round(start + step * i, 3) for i in range(int(round((stop - start) / step)) + 1))

    @property
    def histogram_bins(self):
        step = self.bounds.histogram_step
        return tuple(round(step * i, 3) for i in range(int(math.ceil(self.bounds.histogram_max / step)) + 1))

    def priors(self):
        """{population: FMR upper bounds over grid} measured with bench.prior (priors/NAME.json)."""
        return _priors(self)["populations"]

    def prior_source(self):
        """What the priors were measured on, for people (the calibration page, the README)."""
        return {k: v for k, v in _priors(self).items() if k != "populations"}

    def fitted_fmr(self, t):
        """A published fit of this model's FMR at distance t, or 0 where there is none."""
        return 0.0

    def prior_fmr(self):
        """The curve a registry too small to measure falls back to: at each distance the most
        cautious of every measured population's bound (and a published fit, if any)."""
        tables = list(self.priors().values())
        return tuple(min(1.0, max([self.fitted_fmr(t)] + [table[i] for table in tables]))
                     for i, t in enumerate(self.grid))

    def describe(self):
        """What the admin pages and /api/v1/config say about the model."""
        return {"id": self.id, "name": self.name, "title": self.title, "dims": self.dims,
                "alignment": self.alignment, "sha256": self.sha256}


_load_lock = threading.Lock()
_nets = {}


def _load(model):
    """The model's network, built once per process after its file was checked."""
    net = _nets.get(model.id)
    if net is None:
        with _load_lock:
            net = _nets.get(model.id)
            if net is None:
                model.check_file()
                net = _nets[model.id] = model._open()
    return net


@functools.lru_cache(maxsize=None)
def _checked(path, size, mtime, expected):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest() == expected


def _check_file(path, expected):
    try:
        st = os.stat(path)
    except OSError:
        raise ModelFileError(f"face model file {path} is missing") from None
    if not _checked(path, st.st_size, st.st_mtime_ns, expected):
        raise ModelFileError(f"face model file {path} is damaged or not the expected one"
                             f" (sha256 should be {expected})")


@functools.lru_cache(maxsize=None)
def _read_priors(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _priors(model):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "priors", f"{model.name}.json")
    data = _read_priors(path)
    if data.get("model") != model.id or tuple(data.get("grid", ())) != tuple(model.bounds.grid):
        raise ModelFileError(f"{path} was measured for another model or grid; regenerate it"
                             f" with `python -m bench.prior DIR --face-model {model.name} --write`")
    return data


def rejected_alignment(reason):
    """The quality gate's refusal for a face the aligner cannot place (reason: align's)."""
    return PhotoRejected(reason)
