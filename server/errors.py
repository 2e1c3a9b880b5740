"""One error shape: {"error": {"status": 404, "message": "..."}} for the API and JSON clients,
an error page for people. Every handler goes through error_body()."""
from flask import jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from . import disk


class ApiError(Exception):
    """An error with an HTTP status and a message for the caller."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def error_body(status, message):
    return {"error": {"status": status, "message": message}}


def wants_json():
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and \
        request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


UNAVAILABLE = "The database cannot be reached just now; nothing was changed. Try again shortly."


def error_response(status, message):
    if wants_json():
        return jsonify(error_body(status, message)), status
    return render_template("error.html", status=status, message=message), status


def init_app(app):
    @app.errorhandler(ApiError)
    def _api_error(e):
        return error_response(e.status, e.message)

    from .faces import ModelChanged     # the registry moved to another face model meanwhile

    @app.errorhandler(ModelChanged)
    def _model_changed(e):
        return error_response(409, str(e))

    @app.errorhandler(HTTPException)
    def _http_error(e):
        return error_response(e.code, e.description)

    @app.errorhandler(Exception)
    def _unexpected(e):
        if disk.is_full(e):   # a refusal that says why, and the reserve freed for sign-in
            app.logger.error("disk full: %s", e)
            disk.release_reserve(app.config)
            return error_response(507, disk.message(e, app.config))
        retry_after = getattr(e, "retry_after", None)
        if retry_after:   # the database server is away a moment (db/postgres.py): come back
            app.logger.error("database unavailable: %s", e)
            response, status = error_response(503, UNAVAILABLE)
            response = app.make_response((response, status))
            response.headers["Retry-After"] = str(retry_after)
            return response
        app.logger.exception("unexpected error")
        return error_response(500, "Internal error; the request was not applied.")
