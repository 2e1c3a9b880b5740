from flask import Blueprint

from .auth import role_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.route("/")
@role_required("clerk")
def index():
    return "todo"
