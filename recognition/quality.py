"""The enrolment quality gate: one photo in, one face template out, or a reason why not.

A template enrolled from a bad photo makes every later match worse, and a photo with two
people could enrol the wrong face: refuse rather than guess.
"""
from dataclasses import dataclass

import numpy as np

from . import align, engine
from .errors import PhotoRejected

MIN_FACE_PX = 60        # the encoders align to 112-150 px; much smaller faces lose detail
MIN_SHARPNESS = 15.0    # variance of the Laplacian on the face scaled to 150 px
DETECT_MAX_SIDE = 1000
# Detector passes, cheapest first: upsample 0 on a 1000 px copy sees faces down to ~8 % of the
# photo's longer side (a second person in a group photo too) at a third of the cost of
# upsampling; only a photo where it finds nothing (a small ID-card scan) pays for finer passes.
UPSAMPLE_PASSES = (0, 1, 2)


@dataclass
class Enrolment:
    encoding: np.ndarray
    location: tuple
    sharpness: float

    def kept_crop(self, rgb):
        """The face, level and with room around it, to keep beside a template whose photo
        will be deleted (see align.kept_crop): the next face model re-encodes it from this."""
        points = align.five_points(engine.face_landmarks(rgb, self.location, model="large"))
        return align.kept_crop(rgb, self.location, points)


def enrolment_template(rgb, model, num_jitters=1, min_face_px=MIN_FACE_PX,
                       min_sharpness=MIN_SHARPNESS):
    """Check a photo and encode its one face with the face model (recognition/models).

    Raises PhotoRejected for no face, more than one face, a face too small or too blurry,
    or one the model's aligner cannot place. num_jitters > 1 (dlib) gives a steadier
    template at num_jitters times the encoding cost.
    """
    faces = _find_faces(rgb)
    if not faces:
        raise PhotoRejected("no face found in the photo")
    if len(faces) > 1:
        raise PhotoRejected(f"{len(faces)} faces found; the photo must show exactly one person")
    if _cut_off(faces[0], rgb.shape):
        raise PhotoRejected("face is cut off by the edge of the photo")
    location = engine.clip_location(faces[0], rgb.shape)
    size = min(engine.face_height(location), engine.face_width(location))
    if size < min_face_px:
        raise PhotoRejected(f"face is too small ({size} px across; at least {min_face_px} px)")
    score = sharpness(rgb, location)
    if score < min_sharpness:
        raise PhotoRejected(f"photo is too blurry (sharpness {score:.0f}; at least {min_sharpness:.0f})")
    encoding = model.encoding(rgb, location, num_jitters)
    return Enrolment(encoding, location, score)


def _find_faces(rgb):
    for upsample in UPSAMPLE_PASSES:
        faces = engine.detect_faces(rgb, DETECT_MAX_SIDE, upsample=upsample, clip=False)
        if faces:
            return faces
    return []


def _cut_off(location, shape, slack=0.1):
    """True when the face box reaches more than `slack` of its size past the image edge."""
    top, right, bottom, left = location
    pad_y = slack * (bottom - top)
    pad_x = slack * (right - left)
    return (top < -pad_y or left < -pad_x
            or bottom > shape[0] + pad_y or right > shape[1] + pad_x)


def sharpness(rgb, location):
    """Variance of the Laplacian over the face, scaled to 150 px so big and small faces compare."""
    import cv2
    top, right, bottom, left = location
    crop = rgb[top:bottom, left:right]
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (150, 150), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())
