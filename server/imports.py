from flask import Blueprint

from .auth import role_required

bp = Blueprint("imports", __name__, url_prefix="/imports")


@bp.route("/")
@role_required("clerk")
def index():
    return "todo"
