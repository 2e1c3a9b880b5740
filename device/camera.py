"""Frame sources: a camera, a video file or a folder of images, all read with OpenCV.

Every frame carries t, seconds since the source started, on the source's own clock: the
camera's wall clock, or a file's frame times. Events report that t, so a test on a video
file reads "greeted 0.3 s into the clip" however slow the machine is.

realtime=True makes a file behave like a live camera: frames come at the file's frame rate
by the wall clock, and the frames the engine was too slow to take are skipped, always
handing out the newest one. Without it every frame is read as fast as it is asked for.
"""
import logging
import os
import re
import time
from dataclasses import dataclass

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MAX_BAD_FRAMES = 30      # damaged frames in a row a video file may have before it counts as ended
log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """The camera or file cannot be opened or read."""


@dataclass
class Frame:
    image: np.ndarray   # BGR, as OpenCV reads it
    t: float            # seconds since the source started
    index: int          # position in the source (frames skipped in realtime mode count too)


def open_source(spec, realtime=False, folder_fps=5.0, clock=None):
    """A frame source for a camera index ("0"), a video file, or a folder of images.
    clock (time.monotonic and time.sleep by default) paces a realtime file."""
    spec = str(spec)
    if spec.isdigit():
        return CameraSource(int(spec))
    if os.path.isdir(spec):
        return FolderSource(spec, fps=folder_fps, realtime=realtime, clock=clock)
    if os.path.isfile(spec):
        return VideoFileSource(spec, realtime=realtime, clock=clock)
    raise SourceError(f"camera source {spec!r} is not a camera index, a video file or a folder")


class CameraSource:
    """A live camera: always the newest frame, t by the wall clock.

    A camera has no end: a failed read is a loose cable, a USB reset or a driver hiccup.
    It is read again, and reopened every reopen_s, for up to recover_s; then SourceError,
    so the device stops with a clear error and a non-zero exit (a supervisor restarts it)
    instead of idling with a dark camera while the hall thinks it recognises people."""

    def __init__(self, index, recover_s=15.0, reopen_s=1.0, clock=None):
        self._index = index
        self._recover_s, self._reopen_s = recover_s, reopen_s
        self._clock = clock or WallClock()
        self._capture = self._open()
        if not self._capture.isOpened():
            raise SourceError(f"camera {index} cannot be opened")
        self._start = None
        self._count = 0
        self.dropped = 0
        self._stopping = False

    def stop(self):
        """Give up waiting for a dead camera (the device is shutting down): read() ends."""
        self._stopping = True

    def _open(self):
        import cv2
        capture = cv2.VideoCapture(self._index)
        # A driver queue of old frames would make the engine look at the past: keep one.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return capture

    def _read_again(self):
        """(ok, image) once the camera delivers again; SourceError after recover_s without;
        (False, None) when the device is stopping meanwhile."""
        failed_at = reopened_at = self._clock.now()
        log.warning("camera %s delivered no frame; trying again", self._index)
        while self._clock.now() - failed_at < self._recover_s:
            if self._stopping:
                return False, None
            self._clock.sleep(0.1)
            if self._clock.now() - reopened_at >= self._reopen_s:
                self._capture.release()
                self._capture = self._open()
                reopened_at = self._clock.now()
            ok, image = self._capture.read()
            if ok:
                log.warning("camera %s delivers frames again", self._index)
                return ok, image
        raise SourceError(f"camera {self._index} has delivered no frame for {self._recover_s:.0f} s")

    def read(self):
        """The next Frame; SourceError when the camera stopped for good."""
        ok, image = self._capture.read()
        if not ok:
            ok, image = self._read_again()
            if not ok:
                return None
        now = time.monotonic()
        if self._start is None:
            self._start = now
        self._count += 1
        return Frame(image, now - self._start, self._count - 1)

    def close(self):
        self._capture.release()


class WallClock:
    now = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)


class _PacedSource:
    """Shared pacing: frame i is due at start + i / fps on the wall clock."""

    def __init__(self, fps, realtime, clock=None):
        self.fps = fps
        self.realtime = realtime
        self.clock = clock or WallClock()
        self.dropped = 0
        self._start = None
        self._next = 0

    def _due_index(self):
        """The index to hand out now: the newest frame whose time has come."""
        if not self.realtime:
            return self._next
        now = self.clock.now()
        if self._start is None:
            self._start = now
        due = int((now - self._start) * self.fps)
        if due < self._next:  # ahead of the clock: wait for the frame's time, like a camera
            self.clock.sleep((self._next / self.fps) - (now - self._start))
            due = self._next
        return due


class VideoFileSource(_PacedSource):
    """A video file; t is the frame's time in the file (index / fps)."""

    def __init__(self, path, realtime=False, clock=None):
        import cv2
        self._capture = cv2.VideoCapture(path)
        if not self._capture.isOpened():
            raise SourceError(f"video {path!r} cannot be opened")
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self._frames = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        super().__init__(fps if fps and fps > 0 else 25.0, realtime, clock)

    def read(self):
        """The next Frame (the newest due one in realtime mode), or None at the end."""
        due = self._due_index()
        while self._next < due:  # frames the engine had no time for: decode, never look
            if not self._capture.grab():
                return None
            self._next += 1
            self.dropped += 1
        ok, image = self._capture.read()
        bad = 0
        while not ok and self._next < self._frames - 1 and bad < MAX_BAD_FRAMES:
            # a damaged frame in the middle (an MJPEG AVI stopped at frame 167 of 300, and the
            # 133 good ones after it were never seen): step over a few before giving up
            bad, self._next = bad + 1, self._next + 1
            ok, image = self._capture.read()
        if bad:
            log.warning("skipped %d damaged frame(s) of the video before frame %d", bad, self._next)
        if not ok:
            if self._next < self._frames - 1:
                log.warning("video ended at frame %d of %d: the file is damaged or cut short",
                            self._next, self._frames)
            return None
        frame = Frame(image, self._next / self.fps, self._next)
        self._next += 1
        return frame

    def close(self):
        self._capture.release()


class FolderSource(_PacedSource):
    """A folder of images in natural name order, played at `fps`."""

    def __init__(self, folder, fps=5.0, realtime=False, clock=None):
        super().__init__(fps, realtime, clock)
        self._paths = sorted((os.path.join(folder, name) for name in os.listdir(folder)
                              if name.lower().endswith(IMAGE_SUFFIXES)), key=_natural_key)
        if not self._paths:
            raise SourceError(f"folder {folder!r} holds no images")
        self._folder, self._delivered = folder, 0

    def read(self):
        due = self._due_index()
        self.dropped += max(0, due - self._next)
        self._next = due
        while self._next < len(self._paths):
            image = _read_image(self._paths[self._next])
            frame = Frame(image, self._next / self.fps, self._next)
            self._next += 1
            if image is not None:
                self._delivered += 1
                return frame
        if not self._delivered and not self.dropped:
            # every file was unreadable: say so, not a quiet "0 frames, exit 0"
            raise SourceError(f"no image in folder {self._folder!r} could be read")
        return None

    def close(self):
        pass


def _read_image(path):
    """A folder's image as a BGR frame, or None (skipped, with a warning). Its size is read
    from the header first: a 117 KB JPEG whose header said 30000x30000 took 9 GB and a
    minute, and a larger one crashed the kiosk. A JPEG up to 8 times too large each way is
    read at 1/2, 1/4 or 1/8 scale (a 200 MP phone photo); anything else too large is skipped."""
    import warnings
    import cv2
    from PIL import Image
    # (importing recognition.images also lifts PIL's own limit to what draft mode reads)
    from recognition.images import reduced_scale
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # judged below
            with Image.open(path) as header:
                (width, height), kind = header.size, header.format
    except Exception as e:          # not an image PIL knows, or a lying header
        log.warning("skipped %s: not a readable image (%s)", path, type(e).__name__)
        return None
    scale = reduced_scale(width, height, kind)
    if scale is None:
        log.warning("skipped %s: %dx%d pixels is too large for a frame", path, width, height)
        return None
    try:
        image = cv2.imread(path, {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                                  4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[scale])
    except cv2.error as e:
        log.warning("skipped %s: %s", path, e)
        return None
    if image is None:
        log.warning("skipped %s: OpenCV could not read it", path)
    return image


def _natural_key(path):
    name = os.path.basename(path)
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]
