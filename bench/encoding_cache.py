"""Encode each benchmark photo once: results cached in bench/_work/encodings.pkl (WORK).

Keyed by (path, file size, mtime, kind, model, jitters); kind is "enrol" (the enrolment
gate) or "probe" (the device path). A rejected photo caches its reason (a str).
"""
import os
import pickle

# bench/_work, or CIVIC_BENCH_WORK (the tests point it at a temporary folder: a test run
# must not write into the checkout nor grow the cache with keys of deleted temporary files).
WORK = os.environ.get("CIVIC_BENCH_WORK") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "_work")
CACHE = os.path.join(WORK, "encodings.pkl")


def _key(path, kind, model, jitters):
    st = os.stat(path)
    return (os.path.realpath(path), st.st_size, int(st.st_mtime), kind, model, jitters)


def load():
    try:
        with open(CACHE, "rb") as f:
            return pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError):
        return {}


def save(cache):
    os.makedirs(os.path.dirname(CACHE), exist_ok=True)
    tmp = CACHE + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(cache, f)
    os.replace(tmp, CACHE)


def cached_map(pool, fn, paths, kind, model, jitters, args_of):
    """[fn(args_of(path)) for path in paths], computing only what the cache lacks."""
    cache = load()
    keys = [_key(p, kind, model, jitters) for p in paths]
    missing = [i for i, k in enumerate(keys) if k not in cache]
    if missing:
        results = pool.map(fn, [args_of(paths[i]) for i in missing], chunksize=4)
        for i, result in zip(missing, results):
            cache[keys[i]] = result
        save(cache)
    return [cache[k] for k in keys]
