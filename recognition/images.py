"""Load any photo or frame into one form: an RGB uint8 numpy array, upright.

Enrolment photos come from spreadsheets exported by many offices: EXIF-rotated phone
pictures, 16-bit or transparent PNGs, CMYK scans, the odd decompression bomb. Everything
that is not a readable, reasonably sized image is refused with a reason a person understands.
"""
import io
import logging
import os
import struct
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import PhotoRejected

log = logging.getLogger(__name__)

MAX_BYTES = 30 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 40 MP photo is already far more than a face needs
DRAFT_SCALE = 8          # a JPEG up to 8x larger each way is decoded at reduced scale
DRAFT_FORMATS = ("JPEG", "MPO")   # PIL opens a phone's JPEG with a multi-picture block as MPO

# Our own header check (_fit_pixels) decides what is too large, before any pixel is decoded.
# PIL's default bomb limit (89 MP, refused outright at 179 MP) fires inside Image.open, before
# that check: real 108 and 200 MP phone photos were refused although draft mode reads them at
# 1/4 scale. PIL's guard stays, above anything _fit_pixels could let through.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS * DRAFT_SCALE ** 2
# What cameras, phones, scanners and photo tools write (JPEG opens a phone's MPO too). PIL
# reads dozens more (DDS, SPIDER, IM, QOI...): nobody's ID photo is one, and a damaged one of
# those took seconds or crashed a plugin.
PHOTO_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "AVIF", "JPEG2000")
Image.init()             # registers every plugin: open(formats=...) names only registered ones


def load_image(source, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS):
    """Return an upright RGB uint8 array from a path, bytes or binary file object.

    Raises PhotoRejected for non-images, truncated files, and images over the size limits
    (checked from the header, before the pixels are decoded, so a bomb costs nothing).
    """
    data = _read_bytes(source, max_bytes)
    # face_recognition's api module sets this process-wide on import; a truncated photo must
    # be refused, not enrolled with a grey lower half.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=PHOTO_FORMATS)
            _fit_pixels(img, max_pixels)
            img.load()
            return _to_rgb_array(_upright(img))
        except PhotoRejected:
            raise
        except (UnidentifiedImageError, SyntaxError):
            raise PhotoRejected("not an image file (JPEG, PNG, WebP, BMP, GIF, TIFF, AVIF or"
                                " JPEG 2000 is expected)")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError):
            raise PhotoRejected("image is too large to process safely")
        except (OSError, ValueError, EOFError):
            raise PhotoRejected("image file is truncated or corrupt")
        except Exception:
            # A damaged TIFF or AVIF raised TypeError, RuntimeError, IndexError... from PIL's
            # plugins, and one such photo stopped a whole import. Kept in the log, in case it
            # is a fault of ours rather than of the file.
            log.info("photo refused: its decoder failed", exc_info=True)
            raise PhotoRejected("image file is truncated or corrupt")


# EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose)
_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                8: Image.Transpose.ROTATE_90}
_EXIF_ERRORS = (TypeError, ValueError, KeyError, IndexError, OSError, SyntaxError,
                ZeroDivisionError, OverflowError, struct.error)


def _upright(img):
    """The image turned by its EXIF orientation. exif_transpose also rewrites the EXIF block,
    and a damaged one (a tag of the wrong type) raised TypeError or struct.error from there:
    a 500 for a device snapshot, a stopped import. Then turn by the orientation tag alone."""
    try:
        return ImageOps.exif_transpose(img)
    except _EXIF_ERRORS:
        try:
            method = _ORIENTATION.get(img.getexif().get(0x0112))
        except _EXIF_ERRORS:
            method = None
        return img.transpose(method) if method is not None else img


def _read_bytes(source, max_bytes):
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        try:
            if os.path.getsize(source) > max_bytes:
                raise PhotoRejected(f"file is larger than {max_bytes // (1024 * 1024)} MB")
            with open(source, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise PhotoRejected("photo file not found")
    else:
        data = source.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PhotoRejected(f"file is larger than {max_bytes // (1024 * 1024)} MB")
    if not data:
        raise PhotoRejected("file is empty")
    return data


def reduced_scale(width, height, kind, max_pixels=MAX_PIXELS):
    """The scale (1, 2, 4 or 8) at which an image of this size and format fits max_pixels, or
    None: only a JPEG can be decoded at 1/2, 1/4 or 1/8 (libjpeg's draft mode, no full-size
    copy ever made); phones take 48-64 MP photos, and a face needs far less. The one rule for
    photos here and camera frames read from files (device/camera.py)."""
    for k in (1, 2, 4, DRAFT_SCALE):
        if (width // k) * (height // k) <= max_pixels and (k == 1 or kind in DRAFT_FORMATS):
            return k
    return None


def _fit_pixels(img, max_pixels):
    """Refuse an image over max_pixels from its header, before its pixels are decoded, or
    have a JPEG decoded at the reduced scale that fits (reduced_scale)."""
    width, height = img.size
    k = reduced_scale(width, height, img.format, max_pixels)
    if k == 1:
        return
    if k is not None:
        img.draft("RGB", (-(-width // k), -(-height // k)))
        if img.size[0] * img.size[1] <= max_pixels:
            return
    raise PhotoRejected(
        f"image is too large ({width}x{height} pixels; at most {max_pixels // 1_000_000} megapixels)")


def _to_rgb_array(img):
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits by the bit depth the values use, not by
        # clipping. Scanners and medical-grade cameras store 10- or 12-bit values in 16-bit
        # PNGs: scaled by 65535 they came out nearly black and "no face found".
        arr = np.asarray(img, dtype=np.float64)
        top = next(float(2 ** bits - 1) for bits in (8, 10, 12, 14, 16, 32) if arr.max() < 2 ** bits)
        grey = np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.stack([grey] * 3, axis=-1))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def scaled_to_fit(rgb, max_side):
    """Return (image, scale): the image shrunk so its longer side is at most max_side.

    scale is new/old (1.0 when it already fits). Detection runs on the small copy: HOG
    finds faces as well on a 640 px image as on a 4000 px one, at a fraction of the cost.
    OpenCV's area resize: a few ms for a 4K camera frame, where PIL's took 43 ms.
    """
    import cv2
    height, width = rgb.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return rgb, 1.0
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale


def bgr_to_rgb(frame):
    """OpenCV frames are BGR; dlib wants contiguous RGB (a [..., ::-1] view is rejected)."""
    import cv2
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def jpeg_bytes(rgb, quality=90):
    """JPEG bytes of an RGB array (OpenCV writes BGR)."""
    import cv2
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not write the image as JPEG")   # not the photo's fault
    return data.tobytes()
