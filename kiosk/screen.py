"""The kiosk screen: a local web page served on 127.0.0.1, fed by the agent's state.

The page (kiosk/templates/kiosk/screen.html + kiosk/static/js/kiosk.js) polls /state, a small JSON
document: {"mode": "idle" | "greeting" | "unknown" | a case-file mode ("identify", "blink",
"passed", "notice", "ticket", "casefile": kiosk/casefile_screen.py), "text": ..., "name": ...,
"language": ..., "seq": n}. A greeting or the "please see a clerk" notice shows for hold_s
seconds, then the screen goes back to idle. Only 127.0.0.1 is served: the screen is the
kiosk's own display.
"""
import os
import threading
import time

from flask import Flask, abort, jsonify, render_template, request

from device.phrases import CATALOGUE
from werkzeug.serving import make_server

LOCAL_HOSTS = ("127.0.0.1", "localhost")
STAYS = ("idle", "demo_over")   # shown until something else is: the demo's end waits for "play again"
HERE = os.path.dirname(os.path.abspath(__file__))   # the kiosk owns its templates and static files


class ScreenState:
    """What the screen shows now; set by the agent's thread, read by the web server's."""

    def __init__(self, hold_s=8.0, clock=time.monotonic):
        self.hold_s = hold_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = {"mode": "idle", "text": "", "name": "", "language": ""}
        self._since = clock()
        self._seq = 0

    def show(self, mode, text="", name="", language=""):
        with self._lock:
            self._state = {"mode": mode, "text": text, "name": name, "language": language}
            self._since = self._clock()
            self._seq += 1

    def snapshot(self):
        """The state to draw; a greeting older than hold_s has become idle."""
        with self._lock:
            state = dict(self._state, seq=self._seq)
            if state["mode"] not in STAYS and self._clock() - self._since > self.hold_s:
                state.update(mode="idle", text="", name="", language="")
        return state


def screen_text(key, language="zh"):
    """A label of the screen from the device catalogue (messages/device.json)."""
    return CATALOGUE[key][language]


def bilingual(key):
    """The hall's language and English on one line: "您的号码 · Your ticket"."""
    return f"{screen_text(key)} · {screen_text(key, 'en')}"


def script_text():
    """The labels the page's scripts fill in: the tables by group ("status", "id", "factor")
    and code, and the single labels (the keypads' OK key is short: no separator)."""
    groups = {"label": {"ok": f"{screen_text('screen.ok')} {screen_text('screen.ok', 'en')}",
                        "blink_hint": bilingual("blink_hint")}}
    for key in CATALOGUE:
        if key.count(".") == 2 and key.startswith("screen."):
            _, group, code = key.split(".")
            groups.setdefault(group, {})[code] = bilingual(key)
    return groups


def create_screen_app(state, blueprints=()):
    """The Flask app of the kiosk screen (no database, no login: it only shows state).
    blueprints add features to the page (the case file: kiosk/casefile_screen.py)."""
    app = Flask("kiosk.screen", root_path=HERE, template_folder=os.path.join(HERE, "templates"),
                static_folder=os.path.join(HERE, "static"))
    for bp in blueprints:
        app.register_blueprint(bp)
    app.jinja_env.globals.update(text=screen_text, both=bilingual)

    @app.route("/")
    def index():
        return render_template("kiosk/screen.html", script_text=script_text())

    @app.route("/state")
    def current_state():
        response = jsonify(state.snapshot())
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.before_request
    def _own_host_only():
        """Only the kiosk's own browser: a page on another site that points a name at
        127.0.0.1 (DNS rebinding) sends its own Host, and is refused."""
        if request.host.rsplit(":", 1)[0] not in LOCAL_HOSTS:
            abort(400)

    @app.after_request
    def _no_framing(response):
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return app


class ScreenServer:
    """Serves the screen on 127.0.0.1:port in a background thread (port 0 picks a free one)."""

    def __init__(self, state, port=8765, blueprints=()):
        self._server = make_server("127.0.0.1", port, create_screen_app(state, blueprints),
                                   threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, name="kiosk-screen",
                                        daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._thread.join(5)
