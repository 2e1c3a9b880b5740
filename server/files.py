"""Files the server keeps (face photos, snapshots, the face index, the secret key): written
whole, or not at all."""
import contextlib
import logging
import os
import secrets
import time

log = logging.getLogger(__name__)


def write_whole(path, data, mode=0o644, replace=True):
    """Write data (bytes, or a function that writes to the open binary file) to path: into a
    temporary file beside it, flushed to the disk, then renamed, so a reader never sees half a
    file and a crash leaves none. On any failure (a full disk) the temporary file is removed
    before the error is raised: they were left behind, and nothing ever deleted them.

    replace=False keeps a file already at path (another process got there first) and answers
    False; True when this call's data took the name."""
    tmp = f"{path}.{secrets.token_hex(4)}.tmp"
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as f:
            data(f) if callable(data) else f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return _take_name(tmp, path, replace)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)


def _take_name(tmp, path, replace):
    if replace:
        os.replace(tmp, path)
        return True
    try:
        os.link(tmp, path)          # atomic, and fails if the name is taken
    except FileExistsError:
        return False
    except OSError:                 # no hard links on this file system
        if os.path.exists(path):
            return False
        os.replace(tmp, path)
    return True


def remove_unfinished(folder, older_than_s=0):
    """Delete the temporary files of writes that never finished (a process killed inside
    write_whole) directly in folder, modified more than older_than_s ago; how many. With 0,
    call it only holding the lock every writer of the folder holds: then none is in flight."""
    if not folder or not os.path.isdir(folder):
        return 0
    cutoff, removed = time.time() - older_than_s, 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(".tmp") and entry.is_file(follow_symlinks=False):
                try:
                    if entry.stat().st_mtime <= cutoff:
                        os.remove(entry.path)
                        removed += 1
                except FileNotFoundError:
                    pass
                except OSError as e:
                    log.warning("could not delete %s: %s", entry.path, e)
    return removed
