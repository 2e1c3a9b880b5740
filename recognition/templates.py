"""The one encode/decode pair for face templates stored as float32 BLOBs."""
import numpy as np

DIMENSIONS = 128


def to_blob(encoding):
    """Bytes for a 128-d template (512 bytes, little-endian float32)."""
    vector = np.asarray(encoding, dtype="<f4").reshape(-1)
    if vector.shape != (DIMENSIONS,):
        raise ValueError(f"a face template has {DIMENSIONS} values, not {vector.size}")
    return vector.tobytes()


def from_blob(blob):
    """The 128-d float32 template stored by to_blob."""
    if blob is None or len(blob) != DIMENSIONS * 4:
        raise ValueError("stored face template has the wrong size")
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)
