"""What every response and request gets, whoever handles it: security headers, a JSON parser
that refuses what would crash it, and a body limit that applies before anything is read."""
import json

from flask.json.provider import DefaultJSONProvider

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


def secure_headers(response):
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class SafeJSONProvider(DefaultJSONProvider):
    """Deeply nested JSON ([[[[...]]]] 100,000 deep) raised RecursionError (a 500) in the
    parser; now it is a ValueError like any malformed body, which the views answer with 400."""

    def loads(self, s, **kwargs):
        try:
            value = json.loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply")
        if _depth(value) > MAX_JSON_DEPTH:
            raise ValueError("JSON nested too deeply")
        if not _encodable(value):
            # "\ud800" parses to a lone surrogate, which no database or file can store: a
            # device's session holding one was a 500 on every retry, and held its outbox
            raise ValueError("JSON holds a lone UTF-16 surrogate")
        return value


def _encodable(value):
    """Whether every string (and key) of a parsed JSON value is valid Unicode."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _depth(value):
    """Nesting depth of a parsed JSON value, counted level by level (stops past the limit)."""
    depth, level = 0, [value]
    while depth <= MAX_JSON_DEPTH:
        containers = [item for item in level if isinstance(item, (list, dict))]
        if not containers:
            break
        depth += 1
        level = [child for item in containers
                 for child in (item.values() if isinstance(item, dict) else item)]
    return depth


def init_app(app):
    app.json = SafeJSONProvider(app)
    app.after_request(secure_headers)
