"""Opening a citizen's case file from a device, after liveness: the citizen-safe summary."""
from flask import Blueprint

bp = Blueprint("casefile", __name__, url_prefix="/api/v1")
