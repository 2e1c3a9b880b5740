"""The one face engine shared by the server (enrolment) and every device (greeting).

Plain functions over numpy arrays. Coordinates are always (top, right, bottom, left) in
pixels of the image they were found in. dlib's models load lazily on first use, never at
import time, so the web server only pays for them when it enrols a photo.
"""
from .errors import PhotoRejected

__all__ = ["PhotoRejected"]
