from flask import Blueprint

from .auth import role_required

bp = Blueprint("citizens", __name__, url_prefix="/citizens")


@bp.route("/")
@role_required("clerk")
def index():
    return "todo"
