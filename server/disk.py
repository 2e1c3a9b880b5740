"""A full disk: recognised whatever raised it (a file write, SQLite, PostgreSQL), answered as
a clear refusal naming the folder (507) instead of "internal error", warned about before it
happens (`flask init-db`, which scripts/run.sh runs, and /admin), and softened by a reserve.

The reserve is a file of DISK_RESERVE_MB in the instance folder. The first write that finds
the disk full deletes it, so the writes people cannot do without (a clerk's sign-in, the audit
of what they then look at) have room while an admin frees space; it is made again once there
is room. Writes a read merely causes (a device's last_seen_at, a pull's pacing) are skipped
when they cannot be made (skipped_when_full): a full disk must not stop the kiosks.
"""
import contextlib
import errno
import logging
import os
import shutil
import sqlite3

log = logging.getLogger(__name__)
FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
SQLITE_FULL = 13
POSTGRES_DISK_FULL = "53100"
FOLDERS = ("UPLOADS_DIR", "PHOTOS_DIR", "SNAPSHOTS_DIR", "REPORTS_DIR", "FACEINDEX_DIR")
MB = 1024 * 1024


class Full(OSError):
    """A full disk where the code knows the folder (a write() error names no file)."""

    def __init__(self, folder):
        super().__init__(errno.ENOSPC, "No space left on device")
        self.folder = folder


def is_full(error):
    """True when error (or what caused it) is a disk or quota out of space."""
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, OSError) and error.errno in FULL_ERRNOS:
            return True
        if isinstance(error, sqlite3.Error) and (getattr(error, "sqlite_errorcode", None) == SQLITE_FULL
                                                 or "database or disk is full" in str(error)):
            return True
        if getattr(error, "sqlstate", None) == POSTGRES_DISK_FULL:
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def folder_of(error, config):
    """Which folder ran out: the configured one holding the file, "database" for SQLite's and
    "database server" for PostgreSQL's (a name, not a path: device answers carry it too)."""
    if isinstance(error, Full):
        return error.folder
    filename = getattr(error, "filename", None)
    if isinstance(error, OSError):
        if not filename:
            return "instance"     # a write() says no name; the instance folder holds them all
        path = os.path.abspath(str(filename))
        for key in FOLDERS:
            folder = config.get(key)
            if folder and path.startswith(os.path.abspath(folder) + os.sep):
                return os.path.basename(os.path.abspath(folder))
        return os.path.basename(os.path.dirname(path)) or "instance"
    if getattr(error, "sqlstate", None) == POSTGRES_DISK_FULL:
        return "database server"
    cause = error.__cause__ or error.__context__
    return folder_of(cause, config) if cause is not None and cause is not error else "database"


def message(error, config):
    return (f"The server's disk is full ({folder_of(error, config)} folder): nothing was saved."
            " Free space on it, then try again.")


# --- before it happens ---------------------------------------------------------------------

def places(config):
    """{folder: free bytes} for each configured folder on its own file system, and the SQLite
    database's folder."""
    paths = [config[key] for key in FOLDERS if config.get(key)]
    database = str(config.get("DATABASE", ""))
    if database and "://" not in database:
        paths.append(os.path.dirname(os.path.abspath(database)))
    seen, out = set(), {}
    for path in paths:
        try:
            device = os.stat(path).st_dev
        except OSError:
            continue
        if device not in seen:
            seen.add(device)
            out[path] = shutil.disk_usage(path).free
    return out


def warnings(config):
    """A line for each file system with less than DISK_WARN_MB free."""
    limit = config["DISK_WARN_MB"] * MB
    return [f"only {free // MB} MB free on the disk of {path} (the warning is at"
            f" {config['DISK_WARN_MB']} MB, DISK_WARN_MB): imports, photos and snapshots will be"
            f" refused when it is full" for path, free in places(config).items() if free < limit]


# --- the reserve -----------------------------------------------------------------------------

def reserve_path(config):
    return config["DISK_RESERVE_PATH"]


def make_reserve(config):
    """Write the reserve file if it is missing and there is room for it and the warning's
    margin besides (else a reserve would itself fill the disk). True when it is in place."""
    path, size = reserve_path(config), config["DISK_RESERVE_MB"] * MB
    if not size or os.path.exists(path):
        return bool(size)
    from .files import write_whole
    try:
        if shutil.disk_usage(os.path.dirname(path)).free < size + config["DISK_WARN_MB"] * MB:
            return False
        write_whole(path, lambda f: _fill(f, size), 0o600)
    except OSError as e:
        log.warning("could not write the disk reserve %s: %s", path, e)
        return False
    return True


def _fill(f, size):
    chunk = b"\0" * MB
    for _ in range(size // MB):
        f.write(chunk)


def release_reserve(config):
    """Delete the reserve (the disk is full): True when there was one to delete."""
    try:
        os.remove(reserve_path(config))
    except FileNotFoundError:
        return False
    log.critical("the disk is full: the %d MB reserve %s was released so sign-in and audit can"
                 " still write; free space now", config["DISK_RESERVE_MB"], reserve_path(config))
    return True


def retry_after_release(config, write, *args, **kwargs):
    """write(*args, **kwargs); when the disk is full, release the reserve and try once more."""
    try:
        return write(*args, **kwargs)
    except Exception as e:
        if not is_full(e) or not release_reserve(config):
            raise
    return write(*args, **kwargs)


@contextlib.contextmanager
def skipped_when_full(what):
    """For a write that only records that a read happened: a full disk skips it (logged)."""
    try:
        yield
    except Exception as e:
        if not is_full(e):
            raise
        log.warning("disk full: %s not written", what)
