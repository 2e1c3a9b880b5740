"""Find faces and their landmarks with dlib's models from face_recognition_models: the front
end of every face model (recognition/models), and the eye landmarks the blink check reads.

Models load once, on first use. All locations are (top, right, bottom, left).
"""
import functools
import threading
import warnings

import numpy as np

from .images import scaled_to_fit

_lock = threading.Lock()
# dlib's detector, shape predictors and network keep working buffers inside each model object:
# two threads using one at once (the server checking snapshots for several devices, or an
# import beside them) can crash the process. One face at a time per process.
_in_use = threading.Lock()


@functools.lru_cache(maxsize=None)
def _models():
    """Load dlib's detector and landmark predictors (about a second, once)."""
    with _lock:
        import dlib
        with warnings.catch_warnings():  # it still imports the deprecated pkg_resources
            warnings.simplefilter("ignore")
            import face_recognition_models as frm
        return {
            "detector": dlib.get_frontal_face_detector(),
            "small": dlib.shape_predictor(frm.pose_predictor_five_point_model_location()),
            "large": dlib.shape_predictor(frm.pose_predictor_model_location()),
        }


def warm_up():
    """Load the models now, so the first visitor does not wait for them."""
    _models()


def _raw_face_locations(rgb, upsample):
    models = _models()
    with _in_use:
        return models["detector"](rgb, upsample)


def face_locations(rgb, upsample=1, clip=True):
    """Faces in an RGB image as (top, right, bottom, left).

    upsample: how many times to double the image before looking; 1 finds faces down to
    about 40 px, each step finds smaller faces at four times the cost. With clip=False a
    box may reach past the image edge, which tells that the face is cut off.
    """
    height, width = rgb.shape[:2]
    found = [_rect_to_css(r) for r in _raw_face_locations(rgb, upsample)]
    return [_clip(loc, height, width) for loc in found] if clip else found


def detect_faces(rgb, detect_max_side=640, upsample=1, clip=True):
    """Faces in a full-size image, found on a copy scaled to detect_max_side.

    Returns locations in full-size pixels, largest face first. A smaller detect_max_side
    is faster but misses small (distant) faces.
    """
    small, scale = scaled_to_fit(rgb, detect_max_side)
    height, width = rgb.shape[:2]
    found = [tuple(round(v / scale) for v in loc) for loc in face_locations(small, upsample, False)]
    if clip:
        found = [_clip(loc, height, width) for loc in found]
    return sorted(found, key=face_height, reverse=True)


def clip_location(location, shape):
    """The location cut to an image of the given numpy shape."""
    return _clip(location, shape[0], shape[1])


def face_landmarks(rgb, location, model="small"):
    """dlib's landmark shape for one face: model "small" (5 points, fast) or "large" (68)."""
    import dlib
    top, right, bottom, left = location
    models = _models()
    with _in_use:
        return models[model](rgb, dlib.rectangle(left, top, right, bottom))


def dlib_encoder(path):
    """dlib's ResNet face encoder from its model file (recognition/models/dlib_resnet.py)."""
    import dlib
    with _lock:
        return dlib.face_recognition_model_v1(path)


def dlib_encode(encoder, rgb, shape, num_jitters=1):
    """128-d float32 template from dlib's encoder and a face's landmark shape. num_jitters > 1
    averages that many randomly jittered crops: steadier templates, num_jitters times slower."""
    with _in_use:
        vector = encoder.compute_face_descriptor(rgb, shape, num_jitters)
    return np.asarray(vector, dtype=np.float32)


def eye_points(shape):
    """(left_eye, right_eye) as 6x2 arrays from a 68-point shape (points 36-41, 42-47)."""
    pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
    return pts[36:42], pts[42:48]


def face_height(location):
    top, _, bottom, _ = location
    return bottom - top


def face_width(location):
    _, right, _, left = location
    return right - left


def _rect_to_css(rect):
    return rect.top(), rect.right(), rect.bottom(), rect.left()


def _clip(location, height, width):
    top, right, bottom, left = location
    return max(top, 0), min(right, width), min(bottom, height), max(left, 0)
