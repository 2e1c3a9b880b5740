"""Files the server keeps (face photos, snapshots): written whole, or not at all."""
import contextlib
import os
import secrets


def write_whole(path, data):
    """Write data to path: into a temporary file beside it, flushed to the disk, then renamed,
    so a reader never sees half a file and a crash leaves none. On any failure (a full disk)
    the temporary file is removed before the error is raised: they were left behind, and
    nothing ever deleted them."""
    tmp = f"{path}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
