"""Build test videos for blink liveness from the real clip in tests/data.

- a time slice of the real blinking video, downscaled (fast enough for tests on 2 cores);
- a photo attack: one frame of a real face repeated, with camera sensor noise;
- a photo attack: a printed photo moved across the camera's view.
"""
from pathlib import Path

import cv2
import numpy as np

from recognition.images import load_image


def _writer(dst, fps, size):
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {dst}")
    return writer


def _write(dst, frames_bgr, fps):
    """Write BGR frames to an .mp4 file; returns the path."""
    writer = None
    for frame in frames_bgr:
        if writer is None:
            writer = _writer(dst, fps, (frame.shape[1], frame.shape[0]))
        writer.write(frame)
    writer.release()
    return Path(dst)


def _scaled(frame, max_side):
    height, width = frame.shape[:2]
    scale = max_side / max(height, width)
    return cv2.resize(frame, (round(width * scale), round(height * scale)),
                      interpolation=cv2.INTER_AREA)


def video_slice(src, dst, start_s, end_s, max_side=640):
    """Frames of src from start_s to end_s, scaled to max_side, at src's frame rate."""
    capture = cv2.VideoCapture(str(src))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    capture.set(cv2.CAP_PROP_POS_MSEC, start_s * 1000)

    def frames():
        while capture.get(cv2.CAP_PROP_POS_MSEC) < end_s * 1000:
            ok, frame = capture.read()
            if not ok:
                return
            yield _scaled(frame, max_side)
    try:
        return _write(dst, frames(), fps)
    finally:
        capture.release()


def frame_at(src, t_s, max_side=640):
    """One BGR frame of a video at t_s seconds, scaled to max_side."""
    capture = cv2.VideoCapture(str(src))
    capture.set(cv2.CAP_PROP_POS_MSEC, t_s * 1000)
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise ValueError(f"no frame at {t_s} s in {src}")
    return _scaled(frame, max_side)


def still_frame_video(dst, frame_bgr, seconds=10.0, fps=15, noise=2.0, seed=0):
    """One frame repeated for `seconds`, with Gaussian sensor noise (sigma `noise` levels)
    added per frame, as a camera filming a photo would see it."""
    rng = np.random.default_rng(seed)
    base = frame_bgr.astype(np.float32)

    def frames():
        for _ in range(round(seconds * fps)):
            noisy = base + rng.normal(0.0, noise, base.shape).astype(np.float32)
            yield np.clip(noisy, 0, 255).astype(np.uint8)
    return _write(dst, frames(), fps)


def moving_photo_video(dst, photo_path, seconds=8.0, fps=15, size=(640, 360), photo_height=260,
                       face_crop=None):
    """A photo (scaled to photo_height) that crosses a textured background from left to
    right, bobbing and slightly tilting, as a printed photo waved at the camera.

    face_crop=(top, right, bottom, left) cuts the photo to that box first: a printed
    head-and-shoulders picture whose face is as big as a citizen's at the kiosk.
    """
    rgb = load_image(photo_path)
    if face_crop:
        top, right, bottom, left = face_crop
        rgb = rgb[top:bottom, left:right]
    photo = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    photo = cv2.resize(photo, (round(photo.shape[1] * photo_height / photo.shape[0]), photo_height),
                       interpolation=cv2.INTER_AREA)
    background = _background(size)
    count = round(seconds * fps)

    def frames():
        for i in range(count):
            progress = i / max(count - 1, 1)
            x = round(-photo.shape[1] / 2 + progress * (size[0]))
            y = round((size[1] - photo_height) / 2 + 20 * np.sin(progress * 6 * np.pi))
            angle = 6 * np.sin(progress * 4 * np.pi)
            yield _paste(background.copy(), _rotated(photo, angle), x, y)
    return _write(dst, frames(), fps)


def _background(size):
    """A grey gradient with a grid, so the scene is not blank."""
    width, height = size
    ramp = np.linspace(90, 170, width, dtype=np.float32)
    frame = np.repeat(np.tile(ramp, (height, 1))[:, :, None], 3, axis=2).astype(np.uint8)
    frame[::40, :] = 60
    frame[:, ::40] = 60
    return frame


def _rotated(image, degrees):
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)


def _paste(frame, image, x, y):
    """image placed with its top-left corner at (x, y), cut where it leaves the frame."""
    height, width = image.shape[:2]
    top, left = max(y, 0), max(x, 0)
    bottom, right = min(y + height, frame.shape[0]), min(x + width, frame.shape[1])
    if bottom > top and right > left:
        frame[top:bottom, left:right] = image[top - y:bottom - y, left - x:right - x]
    return frame


def headshot_box(photo_path, margin=0.6):
    """The photo's face box grown by `margin` of its size on every side, cut to the photo."""
    from recognition import engine
    rgb = load_image(photo_path)
    top, right, bottom, left = engine.detect_faces(rgb)[0]
    pad_y, pad_x = round(margin * (bottom - top)), round(margin * (right - left))
    return engine.clip_location((top - pad_y, right + pad_x, bottom + pad_y, left - pad_x), rgb.shape)
