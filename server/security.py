"""What every response and request gets, whoever handles it: security headers, a JSON parser
that refuses what would crash it, and a body limit that applies before anything is read."""
import json
import math

from flask import current_app, g, request
from flask.json.provider import DefaultJSONProvider

from . import limits
from .errors import error_response

# No inline script anywhere (handlers live in static/js); inline style attributes are allowed.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",                   # frame-ancestors for browsers without CSP 2
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",            # a console URL names sessions and citizens
    "Cross-Origin-Opener-Policy": "same-origin",
}
MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 4 * 1024 * 1024   # what limit_body lets any request carry
# I-JSON (RFC 7493): beyond 2^53 an integer is not exact as a double, and no field of ours
# needs more. 10**30 reached SQLite as an OverflowError, 1e400 parsed as an infinity.
MAX_JSON_NUMBER = 2 ** 53
PATH_KEY_CHARS = 32                # of each key named in an error message


class JSONRefused(ValueError):
    """JSON the server will not read; the message says why, and where for one value."""


def parse_json(text, max_bytes=MAX_JSON_BYTES):
    """The value of a JSON text (str or bytes), or JSONRefused: larger than max_bytes, not
    JSON, nested deeper than MAX_JSON_DEPTH, a string or key holding a lone UTF-16 surrogate
    (no database or file can store it), or a number that is NaN, infinite or beyond
    +-MAX_JSON_NUMBER. Every device body and body part is read with this one function."""
    if len(text) > max_bytes:
        raise JSONRefused(f"the JSON is larger than {max_bytes // 1024} KB")
    try:
        value = json.loads(text, parse_int=_bounded_int)
    except RecursionError:
        raise JSONRefused("the JSON is nested too deeply")
    except ValueError as e:     # JSONDecodeError, and UnicodeDecodeError of bytes
        raise JSONRefused(f"not valid JSON ({type(e).__name__})")
    _check_tree(value)
    return value


def _bounded_int(digits):
    """int() of a JSON integer, never of thousands of digits (infinite: refused by the walk)."""
    return int(digits) if len(digits) <= 20 else math.inf


def _check_tree(value):
    """Walk the parsed value once, with a stack (no recursion, whatever its shape); a value's
    path is only written out for a container or a fault (a 4 MB list is a million numbers)."""
    if not isinstance(value, (dict, list)):
        _raise_for(_fault(value), "the JSON")
        return
    stack = [(value, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise JSONRefused("the JSON is nested too deeply")
        for key, child in (node.items() if isinstance(node, dict) else enumerate(node)):
            nested = isinstance(child, (dict, list))
            fault = (isinstance(key, str) and _fault(key)) or (not nested and _fault(child))
            if fault:
                _raise_for(fault, _where(path, key))
            if nested:
                stack.append((child, _where(path, key), depth + 1))


def _fault(value):
    """What makes a scalar unkeepable ("surrogate" or "number"), or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "surrogate"
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        # the chained comparison is False for NaN too
        if not -MAX_JSON_NUMBER <= value <= MAX_JSON_NUMBER:
            return "number"
    return None


def _raise_for(fault, where):
    if fault == "surrogate":
        # "\ud800" parses to a lone surrogate: a device's session holding one was a 500 on
        # every retry, and stored in a candidate key, a 500 on the clerk's page
        raise JSONRefused(f"the JSON holds a lone UTF-16 surrogate (at {where})")
    if fault == "number":
        raise JSONRefused(f"{where} must be a finite number within +-2^53")


def _where(path, key):
    """candidates[0].distance: where a value sits, readable and safe to send back."""
    if isinstance(key, int):
        return f"{path or 'the JSON'}[{key}]"
    shown = key[:PATH_KEY_CHARS].encode("utf-8", "backslashreplace").decode("utf-8")
    return f"{path}.{shown}" if path else shown


class SafeJSONProvider(DefaultJSONProvider):
    """request.get_json() through parse_json: deeply nested JSON ([[[[...]]]] 100,000 deep)
    raised RecursionError (a 500) in the parser; now it is a ValueError like any malformed
    body, which the views answer with 400."""

    def loads(self, s, **kwargs):
        return parse_json(s)


# --- headers ---------------------------------------------------------------------------------

HSTS = "max-age={seconds}"


def secure_headers(response):
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if _may_hold_personal_data() and "no-store" not in response.headers.get("Cache-Control", ""):
        # every page and API answer may name a citizen (a citizen page shows the full ID
        # number and phone): no copy in the browser's cache, its history or a proxy
        response.headers["Cache-Control"] = "no-store"
    _strict_transport(response)
    if response.status_code == 429 and g.get("retry_after"):
        response.headers.setdefault("Retry-After", str(g.retry_after))   # limits.note_wait
    return response


def _may_hold_personal_data():
    """Every response but the static files (scripts, styles, icons: the same for everyone)."""
    return request.endpoint != "static"


def _strict_transport(response):
    """HSTS on an answer over HTTPS, never over plain HTTP (browsers ignore it there, and a
    LAN served without TLS must stay reachable). Behind nginx, request.is_secure reads the
    X-Forwarded-Proto of the PROXY_HOPS trusted proxies (server/requests.py); a client's own
    header is not trusted when PROXY_HOPS is 0."""
    seconds = int(current_app.config.get("HSTS_MAX_AGE_S", 0))
    if seconds > 0 and request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS.format(seconds=seconds))


def _too_fast(e):
    """A budget's 429 in the one error shape, saying when to come back (Retry-After)."""
    body, status = error_response(e.status, e.message)
    return body, status, {"Retry-After": str(e.retry_after)}


def init_app(app):
    app.json = SafeJSONProvider(app)
    app.after_request(secure_headers)
    app.register_error_handler(limits.TooFast, _too_fast)
