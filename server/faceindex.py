"""The server's 1:N search over every enrolled template: an inverted-file index (faiss IVF
with product-quantised codes) with an exact re-rank, persisted in the instance folder, kept
by each server process between imports and brought up to date with the database (only what
changed is read), rebuilt when missing.

Same calls as recognition.gallery.Gallery (add, remove, nearest_two, len = citizens), so the
importer's duplicate check reads the same either way. Devices keep the exact Gallery: their
galleries are hundreds of citizens, where exact search takes microseconds.

How a probe is answered: below `exact_below` live templates, exact search (nothing to gain
from an index). Above, the templates are split in lists of about 256 (k-means); a probe
scans the nearest 15 % of the lists through 32-byte codes of its templates (PQ: 32 pieces
of 6 values, one byte each), the `candidates` closest by code are re-ranked by the face
model's exact distance (model.distances) on the float32 templates, and best / runner-up are
chosen among those exactly as Gallery does. The decision equals exact search whenever the
true nearest other citizen is in the short list; bench.scale measures how often that holds
(recall_at_1) at a million templates.

Memory: every template's values are held once, in one float32 array here; the lists hold
only codes and row numbers, 40 bytes a template (0.05x a 768-byte MobileFaceNet template),
the row ids 17 bytes. The arrays are made with room for twice their rows when built or read
(np.zeros: pages nobody wrote are address space, not memory), so imports add without
copying; past the room they double, and only then are the values held twice, for the copy.

Measured at a million synthetic MobileFaceNet templates on this 2-core machine (bench.scale,
3,000 probes, 128 re-ranked, shared with other work): 4,096 lists, scanning 5 / 6.25 / 7.8 /
10 / 15 % of them found the true nearest for 0.9957 / 0.9977 / 0.9987 / 0.9997 / 1.000 of
probes in 1.4 / 1.6 / 2.2 / 3.2 / 4.1 ms (exact numpy search: 218 ms); every miss a list
not scanned, none the codes' ranking. Built in 73 s, read from its file in 2.4 s; the
process holding it peaked at 1.10x the templates' size.

Why not HNSW: faiss HNSW M=16 (0.19x memory in links) found the true nearest for 0.977 /
0.988 / 0.992 of probes at efSearch 256 / 512 / 768 (1.7 / 3.3 / 5.1 ms), built in 541 s;
its misses were nodes of every in-degree, more entry points did not help, and M=32 costs
0.36x. Why not IVF-Flat (1.000 at 7.8 % of 8,192 lists, 4.6 ms): faiss's per-list arrays
grew the process by 0.4x over 19,000 single adds (each list reallocated apart).

Removal: a removed template is a tombstone, skipped when results are read; the lists are
rebuilt from the live rows when tombstones pass a quarter, or when the rows have grown
8x since the lists were trained (their k-means centres, and so their sizes, came from
those rows).
"""
import math
import os
import threading
import zipfile

import numpy as np

from recognition.gallery import Hit

from . import faces, files

EXACT_BELOW = 20_000        # live templates under which exact search is as fast as the index
ROWS_A_LIST = 256           # rows per list when lists are trained: fewer lists, less to choose
PROBED = 0.15               # share of the lists a probe scans: more is better recall, slower
CANDIDATES = 128            # rows re-ranked exactly per probe
PQ_BYTES = 32               # code bytes a template (one byte a piece of dims / 32 values)
PQ_MIN_ROWS = 10_000        # below, lists keep the values themselves (a PQ code book of 256
                            # codes a piece is trained on ~40 x 256 rows); at most 8 MB twice
TRAIN_PER_LIST = 40         # k-means rows per list (faiss warns below 39)
REGROWTH = 8                # lists retrained when the rows have grown this much since
CHUNK = 50_000              # rows read from the database, and given to the lists, at a time
READ_BYTES = 1 << 20        # the templates are read in pieces this big, straight into place
FILE = "faceindex.npz"
FORMAT = 3                  # the file's layout: templates once, beside the lists of codes
LISTS = "lists.faiss"       # the file's member holding the lists (codes and row numbers)


class FaceIndex:
    """Templates by citizen id (several per citizen), with their template ids for staleness."""

    def __init__(self, model, exact_below=None, candidates=CANDIDATES, probed=PROBED):
        self.model = model          # every template here is this face model's
        self.exact_below = EXACT_BELOW if exact_below is None else exact_below
        self.candidates, self.probed = candidates, probed
        self._values = np.empty((0, model.dims), np.float32)   # the one copy of the templates
        self._citizens = np.empty(0, np.int64)
        self._template_ids = np.empty(0, np.int64)
        self._alive = np.empty(0, bool)
        self._rows = 0
        self._dead = 0              # tombstoned rows among _rows
        self._lists = None          # faiss IVF over rows [0, _rows): codes and row numbers
        self._trained_rows = 0      # rows the lists were trained on
        self._count = None          # cached number of live citizens
        self.unsaved = 0            # templates added or dropped since the file was written
        self.seen_seq = None        # the sync counter when this index last matched the database

    # --- building ---------------------------------------------------------------------------

    @classmethod
    def from_arrays(cls, model, citizen_ids, matrix, template_ids=None, **options):
        """An index of matrix's rows (row i a template of citizen_ids[i]); the rows are copied
        (the index owns its one copy), a chunk at a time."""
        citizens = np.asarray(citizen_ids, np.int64).reshape(-1)
        matrix = np.asarray(matrix, np.float32).reshape(-1, model.dims)
        ids = None if template_ids is None else np.asarray(template_ids, np.int64).reshape(-1)
        return cls._built(model, len(citizens), _chunks(citizens, matrix, ids), **options)

    @classmethod
    def _built(cls, model, count, chunks, **options):
        """An index of about `count` templates given as (citizens, matrix, ids) chunks: room
        for twice count rows is taken first, each chunk written into it, the lists made last."""
        index = cls(model, **options)
        index._make_room(2 * count)
        for citizens, vectors, template_ids in chunks:
            index._append(citizens, vectors, template_ids)
        if index._due_rebuild():
            index._build_lists()
        return index

    def _append(self, citizens, vectors, template_ids=None):
        """Rows at the end: values and ids (the lists are the caller's)."""
        n = len(citizens)
        if template_ids is None:
            template_ids = np.full(n, -1, np.int64)
        need = self._rows + n
        if need > len(self._values):
            self._make_room(max(need, 2 * len(self._values), 1024))
        rows = slice(self._rows, need)
        self._values[rows] = np.asarray(vectors, np.float32).reshape(n, self.model.dims)
        self._citizens[rows], self._template_ids[rows] = citizens, template_ids
        self._alive[rows] = True
        self._rows = need
        self._count = None

    def _make_room(self, capacity):
        """Arrays with room for capacity rows. np.zeros takes zeroed pages from the system,
        which cost memory only once written: the room is address space. (ndarray.resize was
        measured copying: the values twice for a moment.)"""
        for name in ("_values", "_citizens", "_template_ids", "_alive"):
            array = getattr(self, name)
            if capacity > len(array):
                grown = np.zeros((capacity, *array.shape[1:]), array.dtype)
                grown[:self._rows] = array[:self._rows]
                setattr(self, name, grown)

    def _due_rebuild(self):
        """Lists to be made anew: none yet past exact_below; a quarter tombstones; lists that
        keep values (few rows) past PQ_MIN_ROWS; rows grown REGROWTH times since training."""
        if self._lists is None:
            return self._rows >= max(self.exact_below, 1)
        return (self._dead > self._rows // 4
                or (self._trained_rows < PQ_MIN_ROWS <= self._rows)
                or self._rows >= REGROWTH * self._trained_rows)

    def _build_lists(self):
        """Compact tombstones away (in place) and train and fill the lists over the live rows.
        Seconds to minutes at a million (k-means of 4,096 centres, then encoding): bench.scale
        reports build_s."""
        count, self._lists = self._count, None
        self._compact()
        if self._rows >= max(self.exact_below, 1):
            self._lists = _new_lists(self._values[:self._rows])
            self._trained_rows = self._rows
        self._count = count         # the same citizens are live

    def _compact(self):
        """Live rows moved down in place, a chunk at a time (a live row is never below its
        new place, so nothing not yet moved is overwritten)."""
        live = np.flatnonzero(self._alive[:self._rows])
        if len(live) == self._rows:
            return
        for start in range(0, len(live), CHUNK):
            rows = live[start:start + CHUNK]
            into = slice(start, start + len(rows))
            for array in (self._values, self._citizens, self._template_ids):
                array[into] = array[rows]
        self._alive[:len(live)] = True
        self._alive[len(live):self._rows] = False
        self._rows, self._dead = len(live), 0

    @property
    def _vectors(self):
        """The float32 templates of rows [0, _rows) (a view: read it before the next add)."""
        return self._values[:self._rows]

    # --- the Gallery interface -------------------------------------------------------------

    def __len__(self):
        """Citizens (not templates) with a live template."""
        if self._count is None:
            self._count = len(np.unique(self._citizens[:self._rows][self._alive[:self._rows]]))
        return self._count

    @property
    def templates(self):
        return self._rows - self._dead

    def live_rows(self):
        """(citizen ids, the one float32 array of templates, the rows of it that are live),
        rows in template-id order: what the registry's calibration samples, in the same order
        however the index was built (no copy of the templates)."""
        live = np.flatnonzero(self._alive[:self._rows])
        order = live[np.argsort(self._template_ids[live], kind="stable")]
        return self._citizens[order], self._values, order

    def add(self, citizen_id, encoding, template_id=None):
        """Add one template; the lists take it at once (its code goes to its nearest list)."""
        self._add_many([citizen_id], np.asarray(encoding, np.float32).reshape(1, self.model.dims),
                       None if template_id is None else [template_id])

    def _add_many(self, citizens, vectors, template_ids=None):
        if self._count is not None and len(citizens) == 1:
            # counted here, not recounted: np.unique over a million rows for every probe of an
            # import would cost more than the search
            self._count += not self._has(citizens[0])
            count = self._count
        else:
            count = None
        first = self._rows
        self._append(np.asarray(citizens, np.int64), vectors,
                     None if template_ids is None else np.asarray(template_ids, np.int64))
        self._count = count
        self.unsaved += len(vectors)
        if self._lists is not None:
            self._lists.add_with_ids(self._values[first:self._rows], np.arange(first, self._rows))
        if self._due_rebuild():
            self._build_lists()

    def remove(self, citizen_id):
        """Drop every template of the citizen (tombstones until the next rebuild)."""
        count = self._count
        if self._drop(self._alive[:self._rows] & (self._citizens[:self._rows] == citizen_id)):
            self._count = None if count is None else count - 1

    def _has(self, citizen_id):
        return bool((self._alive[:self._rows] & (self._citizens[:self._rows] == citizen_id)).any())

    def _drop(self, rows):
        """Tombstone rows (a mask or positions); the lists are rebuilt past a quarter dead."""
        live = self._alive[:self._rows]
        dropped = int(live[rows].sum())
        if not dropped:
            return 0
        live[rows] = False
        self._count = None
        self._dead += dropped
        self.unsaved += dropped
        if self._lists is not None and self._due_rebuild():
            self._build_lists()
        return dropped

    def nearest_two(self, encoding):
        """(best, runner_up) as Gallery.nearest_two, from exact distances of the short list."""
        probe = np.asarray(encoding, np.float32).reshape(self.model.dims)
        rows = self._candidate_rows(probe)
        if not len(rows):
            return None, None
        distances = self.model.distances(self._values[rows], probe)
        order = np.argsort(distances, kind="stable")
        citizens = self._citizens[rows]
        best = Hit(int(citizens[order[0]]), float(distances[order[0]]))
        for i in order[1:]:
            if citizens[i] != best.citizen_id:
                return best, Hit(int(citizens[i]), float(distances[i]))
        return best, None

    def _candidate_rows(self, probe):
        live = self._alive[:self._rows]
        if self._lists is None:
            return np.flatnonzero(live)              # exact: every live row
        # tombstones take places in the list (under a quarter of the rows, the rebuild sees to
        # that): twice the list leaves room for them
        k = min(self.candidates * (2 if self._dead else 1), self._rows)
        _d, found = self._lists.search(probe.reshape(1, -1), k,
                                       params=_search_params(self._probes()))
        found = found[0][found[0] >= 0]
        return found[live[found]][:self.candidates]

    def _probes(self):
        """Lists a probe scans: the `probed` share, and never fewer rows than exact_below
        (exact search's own size), so a small index scans every list and answers exactly."""
        lists = self._lists.nlist
        floor = math.ceil(lists * EXACT_BELOW / max(self._rows, 1))
        return min(lists, max(1, math.ceil(lists * self.probed), floor))

    def memory(self):
        """Bytes held, by part: the templates' values, the lists (codes, row numbers, k-means
        centres), the rows' ids; the arrays' room for more rows is not counted."""
        lists = 0
        if self._lists is not None:
            lists = self._lists.ntotal * (self._lists.code_size + 8) + \
                self._lists.nlist * self.model.dims * 4
        return {"vectors": self._rows * self.model.dims * 4, "lists": int(lists),
                "rows": self._rows * (8 + 8 + 1)}

    # --- keeping up with the database ---------------------------------------------------------

    def sync(self, db):
        """Make the index hold exactly the database's live templates, touching only what changed.

        Rows are matched on template id, citizen and the first two values of the encoding (so a
        SQLite id reused for another face is seen). Returns the number of rows added + dropped.
        """
        rows = db.execute(f"SELECT t.id, t.citizen_id, substr(t.encoding, 1, 8){LIVE_TEMPLATES}",
                          [self.model.id]).fetchall()
        db_ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        db_citizens = np.fromiter((r[1] for r in rows), np.int64, len(rows))
        db_heads = np.frombuffer(b"".join(bytes(r[2]) for r in rows), np.uint64)
        live = np.flatnonzero(self._alive[:self._rows])
        heads = self._values[live, :2].copy().view(np.uint64).reshape(-1)
        _common, own, theirs = np.intersect1d(self._template_ids[live], db_ids,
                                              return_indices=True)
        same = (self._citizens[live][own] == db_citizens[theirs]) & (heads[own] == db_heads[theirs])
        stale = np.delete(live, own[same])
        missing = np.delete(db_ids, theirs[same])
        self._drop(stale)
        for start in range(0, len(missing), 500):
            chunk = [int(i) for i in missing[start:start + 500]]
            found = db.execute("SELECT id, citizen_id, encoding FROM face_templates WHERE id IN"
                               f" ({', '.join('?' * len(chunk))})", chunk).fetchall()
            self._add_many([r[1] for r in found], _matrix(self.model, (r[2] for r in found)),
                           [r[0] for r in found])
        return len(stale) + len(missing)

    # --- persistence ------------------------------------------------------------------------

    def stamp(self):
        """What the database must still say for this index to be current (see db_stamp)."""
        live = np.flatnonzero(self._alive[:self._rows])
        if not len(live):
            return (0, 0, 0, b"")
        ids = self._template_ids[live]
        top = live[np.argmax(ids)]
        return (len(ids), int(ids.max()), int(ids.sum()), self._values[top].tobytes())

    def catch_up(self, db, sync_seq=None):
        """Take in what other processes (or the clerk console) changed since this index was
        read. Every change of a face bumps the sync counter (devices rely on it too): when the
        caller passes it and it is still `seen_seq`, nothing changed and nothing is read."""
        if sync_seq is None or sync_seq != self.seen_seq:
            if self.stamp() != db_stamp(db, self.model):
                self.sync(db)
        self.seen_seq = sync_seq

    def save(self, path):
        """Write atomically (a crash mid-write leaves the previous file, or none). A zip of
        .npy arrays and the lists (faiss's own format, codes only): each template's values
        are in the file once, and written from where they are held, not copied first."""
        files.write_whole(path, self._write, 0o600)
        self.unsaved = 0

    def _write(self, f):
        arrays = {"format": np.array(FORMAT), "face_model": np.array(self.model.id),
                  "trained_rows": np.array(self._trained_rows),
                  "citizens": self._citizens[:self._rows],
                  "template_ids": self._template_ids[:self._rows],
                  "alive": self._alive[:self._rows], "vectors": self._vectors}
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for name, array in arrays.items():
                with z.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)
            if self._lists is not None:
                with z.open(LISTS, "w", force_zip64=True) as member:
                    _write_lists(self._lists, member)

    @classmethod
    def load(cls, path, model, **options):
        """The index in the file; ValueError when it holds another model's templates or was
        written in another layout."""
        with zipfile.ZipFile(path) as z:
            tag = _member(z, "face_model")
            if str(tag) != model.id:
                raise ValueError(f"{path} holds templates of another face model ({tag})")
            if int(_member(z, "format")) != FORMAT:
                raise ValueError(f"{path} was written in another layout")
            index = cls(model, **options)
            citizens = _member(z, "citizens")
            index._make_room(2 * len(citizens))
            index._rows = len(citizens)
            index._citizens[:index._rows] = citizens
            index._template_ids[:index._rows] = _member(z, "template_ids")
            index._alive[:index._rows] = _member(z, "alive")
            with z.open("vectors.npy") as member:
                _read_into(member, index._values[:index._rows])
            index._dead = int(index._rows - index._alive[:index._rows].sum())
            if LISTS in z.namelist():
                index._lists = _read_lists(z, index._rows)
                index._trained_rows = int(_member(z, "trained_rows"))
        if index._due_rebuild():
            index._build_lists()
        index.unsaved = 0
        return index


# --- the database side ------------------------------------------------------------------------

LIVE_TEMPLATES = (" FROM face_templates t JOIN citizens c ON c.id = t.citizen_id"
                  " WHERE c.removed_at IS NULL AND t.face_model = ?")


def db_stamp(db, model):
    """(live templates, max template id, sum of ids, encoding of the max id) in the database.

    Ids only grow (PostgreSQL identities never reuse; SQLite gives max + 1 and can reuse only
    the largest id after deleting it, which the max row's encoding catches), so any insert,
    deletion, re-enrolment or citizen removal changes one of these.
    """
    count, top, total = db.execute(f"SELECT count(*), max(t.id), sum(t.id){LIVE_TEMPLATES}",
                                   [model.id]).fetchone()
    if not count:
        return (0, 0, 0, b"")
    blob = db.execute("SELECT encoding FROM face_templates WHERE id = ?", [top]).fetchone()[0]
    return (int(count), int(top), int(total), model.from_blob(blob).tobytes())


def load_from_db(db, model=None, **options):
    """A FaceIndex of every live template of the registry's model, read CHUNK rows at a time
    into its array (a million rows as Python objects took more memory than the index). A
    change committed during the read may be missed: the stamp then differs, and the next
    catch_up takes it in, as for a change made just after."""
    model = model or faces.active(db)
    count = db.execute(f"SELECT count(*){LIVE_TEMPLATES}", [model.id]).fetchone()[0]
    return FaceIndex._built(model, count, _pages(db, model), **options)


def _pages(db, model):
    """(citizens, matrix, template ids) of the live templates, CHUNK rows a page, by id."""
    last = 0
    while True:
        rows = db.execute(f"SELECT t.id, t.citizen_id, t.encoding{LIVE_TEMPLATES} AND t.id > ?"
                          " ORDER BY t.id LIMIT ?", [model.id, last, CHUNK]).fetchall()
        if not rows:
            return
        yield (np.array([r[1] for r in rows], np.int64), _matrix(model, (r[2] for r in rows)),
               np.array([r[0] for r in rows], np.int64))
        last = rows[-1][0]


# One index per folder per process, kept between imports (reading a million templates again
# for every import would cost more than the import); the lock gives it to one import at a time.
_HELD = {}
_LOCKS = {}
_LOCKS_LOCK = threading.Lock()


def open_index(db, folder, **options):
    """The index of every live template, for one import at a time in this process (release()
    when done): this process's copy or the file, brought up to date with the database, or,
    when neither exists or the file is unreadable, one rebuilt from the database and saved."""
    folder = os.path.abspath(folder)
    with _LOCKS_LOCK:
        lock = _LOCKS.setdefault(folder, threading.Lock())
    lock.acquire()
    try:
        model = faces.active(db)
        index = _HELD.pop(folder, None)
        if index is not None and index.model.id != model.id:
            index = None                 # the registry was re-encoded: another model's index
        index = index or _from_file(folder, model, options)
        if index is None:
            index = load_from_db(db, model, **options)
            _save(index, folder)
        else:
            index.catch_up(db)
        return index
    except BaseException:
        lock.release()
        raise


def release(folder, index, ok=True):
    """Hand the index back after an import: kept for the next one when the import ended well
    (its writes committed), written to the file when much has changed since the last write;
    dropped after a failure (it may hold templates of a rolled-back batch)."""
    folder = os.path.abspath(folder)
    try:
        if ok:
            if index.unsaved > max(SAVE_AFTER, index.templates // 50):
                _save(index, folder)
            _HELD[folder] = index
    finally:
        _LOCKS[folder].release()


SAVE_AFTER = 1000   # changes before the file is rewritten (the next process syncs the rest)


def _from_file(folder, model, options):
    path = os.path.join(folder, FILE)
    if not os.path.exists(path):
        return None
    try:
        return FaceIndex.load(path, model, **options)
    except Exception:
        # unreadable (an empty file raised EOFError, a cut one BadZipFile, and every import
        # stopped there), of another model or layout: the database is the truth, the index
        # is rebuilt from it
        return None


def _save(index, folder):
    os.makedirs(folder, exist_ok=True)
    index.save(os.path.join(folder, FILE))


def _matrix(model, blobs):
    return np.frombuffer(b"".join(bytes(b) for b in blobs), dtype="<f4").astype(
        np.float32).reshape(-1, model.dims)


def _chunks(citizens, matrix, template_ids):
    """CHUNK-row slices (views) of parallel arrays."""
    for start in range(0, len(citizens), CHUNK):
        rows = slice(start, start + CHUNK)
        yield citizens[rows], matrix[rows], None if template_ids is None else template_ids[rows]


def _read_into(member, out):
    """Read a .npy array of out's shape and dtype from member into out, a piece at a time
    (np.load would make an array of its own: the values twice while they are moved)."""
    version = np.lib.format.read_magic(member)
    header = {(1, 0): np.lib.format.read_array_header_1_0,
              (2, 0): np.lib.format.read_array_header_2_0}[version]
    shape, fortran, dtype = header(member)
    if shape != out.shape or fortran or dtype != np.dtype("<f4"):
        raise ValueError("the index file's templates do not fit its rows")
    buffer = memoryview(out.reshape(-1).view(np.uint8))
    done = 0
    while done < len(buffer):
        got = member.readinto(buffer[done:done + READ_BYTES])
        if not got:
            raise ValueError("the index file is cut short")
        done += got


def _member(z, name):
    """One .npy array of the index file; ValueError when the file has none of that name."""
    if f"{name}.npy" not in z.namelist():
        raise ValueError(f"the index file has no {name}")
    with z.open(f"{name}.npy") as member:
        return np.lib.format.read_array(member, allow_pickle=False)


# --- faiss, imported only when there are lists -------------------------------------------------

def _new_lists(values):
    """IVF lists over values (n x dims), trained on a sample of them, holding row numbers.
    PQ codes without residuals: one table of distances a probe, whatever the list (with
    residuals, faiss precomputes a table a list: 4,096 x 32 x 256 floats, 134 MB)."""
    import faiss
    n, dims = values.shape
    count = _list_count(n)
    quantizer = faiss.IndexFlatL2(dims)
    if n < PQ_MIN_ROWS:
        lists = faiss.IndexIVFFlat(quantizer, dims, count)
    else:
        lists = faiss.IndexIVFPQ(quantizer, dims, count, _pq_pieces(dims), 8)
        lists.by_residual = False
    lists.own_fields = True
    quantizer.this.disown()         # the lists delete their quantizer (own_fields)
    lists.cp.min_points_per_centroid = 1    # the sample's size is chosen below
    sample = np.random.default_rng(0).choice(n, min(n, max(TRAIN_PER_LIST * count, PQ_MIN_ROWS)),
                                             replace=False)
    lists.train(values[np.sort(sample)])
    for start in range(0, n, CHUNK):
        chunk = values[start:start + CHUNK]
        lists.add_with_ids(chunk, np.arange(start, start + len(chunk)))
    return lists


def _list_count(rows):
    """A power of two near rows / ROWS_A_LIST (1,000,000 rows: 4,096 lists)."""
    return 2 ** max(0, round(math.log2(max(rows / ROWS_A_LIST, 1))))


def _pq_pieces(dims):
    """The most pieces, up to PQ_BYTES, that dims divides into (192: 32 pieces of 6)."""
    return max(m for m in range(1, PQ_BYTES + 1) if dims % m == 0)


def _search_params(probes):
    import faiss
    return faiss.SearchParametersIVF(nprobe=probes)


def _write_lists(lists, member):
    import faiss
    faiss.write_index(lists, faiss.PyCallbackIOWriter(member.write))


def _read_lists(z, rows):
    import faiss
    with z.open(LISTS) as member:
        lists = faiss.read_index(faiss.PyCallbackIOReader(member.read))
    if lists.ntotal != rows:
        raise ValueError("the index file's lists and rows disagree")
    return lists
