from flask import Blueprint

from .auth import role_required

bp = Blueprint("console", __name__, url_prefix="/console")


@bp.route("/", endpoint="queue")
@role_required("clerk")
def queue():
    return "todo"


@bp.route("/dashboard")
@role_required("clerk")
def dashboard():
    return "todo"
