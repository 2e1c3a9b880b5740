"""Test videos made from the still photos in tests/data/faces: a face cut out of a photo,
moving across a plain background at 640x360, present only when a schedule says so.

MJPG in .avi: OpenCV can always write and read it back, frame-exact.
"""
import functools

import cv2
import numpy as np

from conftest import PEOPLE, VIDEO
from recognition import engine, images

SIZE = (640, 360)
FPS = 15


@functools.lru_cache(maxsize=None)
def face_patch(person, index=1, face_px=120):
    """BGR cut-out of the person's face (with hair and shoulders) scaled so the face is
    face_px tall: what a kiosk camera sees of someone a metre away."""
    rgb = images.load_image(str(PEOPLE / person / f"{index}.jpg"))
    top, right, bottom, left = engine.detect_faces(rgb, 800)[0]
    size = bottom - top
    height, width = rgb.shape[:2]
    crop = rgb[max(0, top - size // 2):min(height, bottom + size // 2),
               max(0, left - size // 2):min(width, right + size // 2)]
    scale = face_px / size
    crop = cv2.resize(crop, (round(crop.shape[1] * scale), round(crop.shape[0] * scale)),
                      interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)


def background(seed=0):
    """A wall with some texture (not flat, so the detector has something to refuse)."""
    rng = np.random.default_rng(seed)
    width, height = SIZE
    ramp = np.linspace(150, 210, width, dtype=np.float32)
    wall = np.repeat(ramp[None, :, None], height, axis=0).repeat(3, axis=2)
    wall += rng.normal(0, 4, wall.shape).astype(np.float32)
    wall[:, :, 0] -= 20
    return np.clip(wall, 0, 255).astype(np.uint8)


def paste(frame, patch, x, y):
    """Put patch with its top-left corner at (x, y), cut to the frame."""
    height, width = frame.shape[:2]
    ph, pw = patch.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + pw), min(height, y + ph)
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = patch[y0 - y:y1 - y, x0 - x:x1 - x]


def write_video(path, frames, fps=FPS):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, SIZE)
    assert writer.isOpened(), "OpenCV cannot write MJPG video"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def visitor_video(path, people, seconds=3.0, present=None, fps=FPS, drift_px=60):
    """A video of the given people (folder names, or (name, photo index)) side by side,
    each drifting slowly sideways; present: [(from_s, to_s)] when they are in view
    (default: the whole time)."""
    present = present or [(0.0, seconds)]
    patches = [face_patch(*(p if isinstance(p, tuple) else (p,))) for p in people]
    wall = background()
    frames = []
    for i in range(round(seconds * fps)):
        t = i / fps
        frame = wall.copy()
        if any(start <= t < end for start, end in present):
            for k, patch in enumerate(patches):
                slot = SIZE[0] // (len(patches) + 1) * (k + 1)
                x = slot - patch.shape[1] // 2 + round(drift_px * (t / seconds - 0.5))
                paste(frame, patch, x, (SIZE[1] - patch.shape[0]) // 2)
        frames.append(frame)
    return write_video(path, frames, fps)


def real_clip(path, start_s, seconds, fps=FPS):
    """A 640x360 clip of tests/data/video (a real person facing the camera)."""
    capture = cv2.VideoCapture(str(VIDEO))
    source_fps = capture.get(cv2.CAP_PROP_FPS)
    capture.set(cv2.CAP_PROP_POS_FRAMES, round(start_s * source_fps))
    frames, step = [], source_fps / fps
    for i in range(round(seconds * source_fps)):
        ok, frame = capture.read()
        if not ok:
            break
        if i >= len(frames) * step:  # keep every step-th frame
            frames.append(cv2.resize(frame, SIZE, interpolation=cv2.INTER_AREA))
    capture.release()
    return write_video(path, frames, fps)
