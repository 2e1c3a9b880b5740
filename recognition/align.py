"""Cut a face out for an embedding network: five landmarks onto a fixed template.

ArcFace-trained networks (MobileFaceNet among them) were trained on 112x112 crops whose eye
centres, nose tip and mouth corners sit at fixed points (the InsightFace template). A crop
made any other way puts the features where the network never saw them, and the distances
grow for everyone. The five points come from dlib's 68 landmarks (the same shape the blink
check reads); a similarity transform (rotation, scale, shift: no shear) maps them onto the
template, fitted by least squares (Umeyama 1991).

Landmarks placed on something that is not a face, or eyes too close together to measure,
cannot be mapped onto the template: such a face is refused for enrolment with a reason
rather than encoded into a template that matches nobody.
"""
import numpy as np

SIZE = 112
# InsightFace's 112x112 template: left eye, right eye, nose tip, left and right mouth corner
# (left/right as seen in the image).
TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]], np.float64)
# RMS distance of the mapped points from the template, in template pixels. Photos of the
# calibration sets fit within 7.2 (median 3.1); a face squeezed to half its width, as a
# turned head looks, still fits within 4.5, so this refuses only points that are no face.
MAX_FIT_ERROR = 9.0
MIN_EYE_DISTANCE_PX = 8.0      # fewer pixels between the eyes than this: nothing to align on


def five_points(shape):
    """(5, 2) float array from a dlib 68-point shape: eye centres, nose tip, mouth corners."""
    p = np.array([(q.x, q.y) for q in shape.parts()], np.float64)
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])


def similarity(src, dst=TEMPLATE):
    """The 2x3 similarity transform taking src points to dst points (least squares)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mean_s, mean_d = src.mean(0), dst.mean(0)
    s, d = src - mean_s, dst - mean_d
    u, sigma, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(sigma) @ sign) / s.var(0).sum()
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mean_d - scale * rotation @ mean_s
    return matrix


def fit_error(matrix, src, dst=TEMPLATE):
    """RMS distance, in template pixels, between the mapped src points and dst."""
    mapped = np.asarray(src, np.float64) @ matrix[:, :2].T + matrix[:, 2]
    return float(np.sqrt(((mapped - dst) ** 2).sum(1).mean()))


def unalignable(points):
    """Why these five points cannot be aligned, or None when they can."""
    eyes = float(np.linalg.norm(points[1] - points[0]))
    if eyes < MIN_EYE_DISTANCE_PX:
        return f"the face cannot be aligned for encoding: the eyes are {eyes:.0f} px apart"
    if fit_error(similarity(points), points) > MAX_FIT_ERROR:
        return "the face cannot be aligned for encoding: its landmarks do not form a face"
    return None


def crop(rgb, points):
    """The 112x112 RGB crop with the five points on the template."""
    import cv2
    return cv2.warpAffine(rgb, similarity(points), (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


KEEP_SIZE = 256          # side of the face crop kept to re-encode a template (see kept_crop)


def kept_crop(rgb, location, points):
    """A KEEP_SIZE x KEEP_SIZE RGB crop of the face at location, turned so the eyes are level
    and scaled so the face fills the middle half: kept beside a template whose source image is
    deleted later (a clerk-confirmed snapshot, purged after retention), so that the next face
    model can find, align and encode the face again. Loose on purpose: every model's aligner
    wants the face with room around it, and none of them this model's 112 px cut."""
    import cv2
    top, right, bottom, left = location
    centre = ((left + right) / 2.0, (top + bottom) / 2.0)
    dx, dy = points[1] - points[0]
    angle = float(np.degrees(np.arctan2(dy, dx)))
    scale = (KEEP_SIZE / 2.0) / max(1.0, float(bottom - top))
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    matrix[:, 2] += (KEEP_SIZE / 2.0 - centre[0], KEEP_SIZE / 2.0 - centre[1])
    return cv2.warpAffine(rgb, matrix, (KEEP_SIZE, KEEP_SIZE), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_REPLICATE)
