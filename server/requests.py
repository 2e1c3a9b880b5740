"""Reading a request safely: URL ids, query-string values, body size, the caller's address.

Every parser here answers a value, None, or ApiError(400): a hand-typed or hostile query
string never reaches a query in a form that raises (a 500).
"""
from datetime import date

from flask import current_app, request
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from .errors import ApiError
from .i18n import t
from .times import day_bounds

MAX_ROW_ID = 2 ** 63 - 1          # the largest integer SQLite and PostgreSQL (bigint) store
PAGE_SIZE = 50
MAX_PAGE = 100
# MAX_CONTENT_LENGTH is sized for the bulk photo zip; no other request needs more than this
# (a device session with its snapshot is ~2 MB).
MB = 1024 * 1024
BODY_MAX_BYTES = 4 * MB
BIG_UPLOAD_ENDPOINTS = ("imports.index",)
# An admin's photo forms: a phone photo is 4-15 MB (each is checked against the importer's
# 30 MB later); the new-citizen form takes up to 5.
PHOTO_FORM_MAX_BYTES = {"records.new_citizen": 160 * MB, "records.add_photo": 32 * MB}


class RowIdConverter(IntegerConverter):
    """<int:...> limited to what the database can store: /citizens/99999999999999999999 is a
    404, not an OverflowError (500) when the id reaches the query."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", MAX_ROW_ID)
        super().__init__(map, *args, **kwargs)


def limit_body():
    """Cap the body of every request before it is read: 4 MB, or MAX_CONTENT_LENGTH for the
    bulk upload of a signed-in admin (an anonymous 600 MB POST to the upload page was read to
    disk before the login check refused it). A chunked body has no Content-Length to refuse
    up front; max_content_length stops reading it at the cap."""
    limit = min(BODY_MAX_BYTES, current_app.config["MAX_CONTENT_LENGTH"] or BODY_MAX_BYTES)
    if current_user.is_authenticated and current_user.is_admin:
        if request.endpoint in BIG_UPLOAD_ENDPOINTS:
            limit = current_app.config["MAX_CONTENT_LENGTH"]
        elif request.endpoint in PHOTO_FORM_MAX_BYTES:
            limit = min(PHOTO_FORM_MAX_BYTES[request.endpoint],
                        current_app.config["MAX_CONTENT_LENGTH"] or PHOTO_FORM_MAX_BYTES[request.endpoint])
    request.max_content_length = limit
    if (request.content_length or 0) > limit:
        raise RequestEntityTooLarge(t("The upload is larger than {mb} MB; nothing was saved.")
                                    .format(mb=limit // MB))


def client_ip():
    return request.remote_addr or ""


def parse_row_id(text):
    """A row id typed in a query string (ASCII digits, within the integer range), or None.
    "²".isdigit() is True but int("²") raises, and a bigger number overflows: 500s."""
    if text and text.isascii() and text.isdigit() and int(text) <= MAX_ROW_ID:
        return int(text)
    return None


def parse_after(text):
    """A keyset cursor "after this id" (0 = the first page); anything else is 0."""
    return parse_row_id(text) or 0


def parse_day(text):
    """A YYYY-MM-DD filter value, or None when empty. Raises ApiError(400) when malformed."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ApiError(400, t("Dates are written YYYY-MM-DD."))
    try:
        day_bounds(day)  # 0001-01-01 or 9999-12-31 have no UTC bounds: OverflowError, a 500
    except OverflowError:
        raise ApiError(400, t("That date is out of range."))
    return day


def clamp_page_size(text, default=PAGE_SIZE):
    """min(per_page, MAX_PAGE): a client cannot ask for the whole table at once."""
    try:
        return max(1, min(int(text), MAX_PAGE))
    except (TypeError, ValueError):
        return default


def init_app(app):
    app.url_map.converters["int"] = RowIdConverter  # before any route is added
    hops = int(app.config["PROXY_HOPS"])
    if hops > 0:
        # Behind nginx every request comes from 127.0.0.1: one stranger's 30 wrong passwords
        # would make every clerk wait. Trust exactly the proxies configured, no more (a client
        # could write X-Forwarded-For itself).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    app.before_request(limit_body)                   # before CSRF's check, which reads the form
