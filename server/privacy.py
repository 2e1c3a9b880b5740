"""How personal data leaves the server: masked in lists, images never cached on the way."""
import os

from flask import abort, send_file
from werkzeug.utils import safe_join

from .i18n import t


def mask(value, keep_start=4, keep_end=4):
    """4401**********1234: enough to tell rows apart, not enough to use the number."""
    if not value:
        return ""
    if len(value) <= keep_start + keep_end:
        return value[:2] + "*" * (len(value) - 2)
    return value[:keep_start] + "*" * (len(value) - keep_start - keep_end) + value[-keep_end:]


def mask_phone(phone):
    return mask(phone, 3, 4)


def private_image(folder, relative):
    """Send an image file of `folder` (a face photo or snapshot) that no browser or proxy
    keeps a copy of; 404 when it is missing or the name points outside the folder."""
    path = relative and safe_join(folder, relative)
    if not path or not os.path.isfile(path):
        abort(404, t("The image file is missing."))
    response = send_file(path, mimetype=_image_type(path), max_age=0)
    response.headers["Cache-Control"] = "no-store, private"
    return response


def _image_type(path):
    extension = os.path.splitext(path)[1].lower()
    return {".png": "image/png", ".webp": "image/webp", ".gif": "image/gif", ".bmp": "image/bmp",
            ".avif": "image/avif"}.get(extension, "image/jpeg")
