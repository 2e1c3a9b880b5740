"""What a device sends with a passed blink, so the server can see it happen itself.

A device's "liveness passed" is only its word: a stolen token could report it for any
photo. So the report carries face crops of the track from before, during and after the blink,
with their times, and the server checks them (server/evidence.py): distinct frames, the
claimed citizen's face in each, the eyes closing and opening again by the device's own rule,
all within the visit. BlinkChallenge feeds every eye sample here; what is kept is a few
small crops, not frames.
"""
from collections import deque

from recognition.images import jpeg_bytes

KEPT = 24            # recent samples kept (0.8 s at 30 frames a second): a blink is 0.1-0.4 s
BEFORE, AFTER = 2, 2  # open-eye crops sent from before the blink and from after it
CROP_MARGIN = 0.45   # the face with this share of its size around it: room to find it again
CROP_SIDE = 256      # longest side of a crop; the eyes stay wider than the 20 px EAR needs
QUALITY = 90


class Evidence:
    """The crops of one track's blink challenge."""

    def __init__(self, first_t):
        self.first_t = first_t          # the visit's start: times are sent relative to it
        self._recent = deque(maxlen=KEPT)
        self._blink = None              # (before samples, closed sample, after samples)

    def add(self, t, openness, rgb, location, blink=None):
        """One eye sample of the track with its frame; blink: the Blink it completed, if any."""
        sample = (t, openness, _crop(rgb, location))
        if self._blink is not None:
            before, closed, after = self._blink
            if len(after) < AFTER:
                after.append(sample)
            return
        self._recent.append(sample)
        if blink is not None:
            self._blink = self._around(blink)

    def _around(self, blink):
        before = [s for s in self._recent if s[0] < blink.start][-BEFORE:]
        during = [s for s in self._recent if blink.start <= s[0] < blink.end]
        closed = min(during, key=lambda s: s[1]) if during else None
        end = [s for s in self._recent if s[0] >= blink.end][:1]
        return before, closed, end

    def payload(self):
        """[{"t": seconds since the visit began, "jpeg": bytes}] of the blink, or [] when no
        blink was seen (or it began before the crops kept)."""
        if self._blink is None or self._blink[1] is None or not self._blink[0]:
            return []
        before, closed, after = self._blink
        chosen = before + [closed] + after
        return [{"t": round(t - self.first_t, 3), "jpeg": jpeg_bytes(crop, QUALITY)}
                for t, _openness, crop in chosen]


def _crop(rgb, location):
    """The face with its margin, at most CROP_SIDE across (a copy: the frame is not kept)."""
    import cv2
    top, right, bottom, left = location
    pad_y, pad_x = int((bottom - top) * CROP_MARGIN), int((right - left) * CROP_MARGIN)
    height, width = rgb.shape[:2]
    crop = rgb[max(0, top - pad_y):min(height, bottom + pad_y), max(0, left - pad_x):min(width, right + pad_x)]
    scale = CROP_SIDE / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, (round(crop.shape[1] * scale), round(crop.shape[0] * scale)),
                          interpolation=cv2.INTER_AREA)
    return crop.copy()
