"""The command line every device shares: its options, and building the parts it runs on.

`python -m kiosk` and `python -m robot` are thin front ends over run_device(): the camera,
store, API client and syncer are made here and handed to the agent; each front end adds what
the citizen sees and hears.
"""
import argparse
import logging
import os
import signal
import sqlite3
import sys

from recognition.liveness import BlinkPolicy

from .agent import Agent
from .camera import SourceError, open_source
from .client import ApiClient
from .events import open_events
from .greeter import GreeterSettings
from .store import Store
from .sync import Syncer


def default_store_path(device="kiosk"):
    """<device>.db in the per-user data folder ($XDG_DATA_HOME or ~/.local/share)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, f"civic-{device}", f"{device}.db")


def build_parser(prog="python -m kiosk", description="The kiosk agent: greet citizens by face."):
    """The agent's options (shared with `python -m robot`)."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--server", required=True, help="the server's base URL, e.g. http://10.0.0.5:5000")
    p.add_argument("--token", default=os.environ.get("CIVIC_DEVICE_TOKEN"),
                   help="device token from `flask --app app register-device` (or CIVIC_DEVICE_TOKEN)")
    p.add_argument("--camera", required=True, metavar="SOURCE",
                   help="camera index (0), a video file, or a folder of images")
    p.add_argument("--realtime", action="store_true",
                   help="play a file at its frame rate, dropping frames the engine cannot keep up with")
    p.add_argument("--headless", action="store_true", help="no local screen server")
    p.add_argument("--speech", default="on", metavar="on|off|FILE.wav",
                   help="speak, stay silent, or write each greeting to FILE.wav, FILE-2.wav, ...")
    p.add_argument("--events", metavar="FILE|-", help="write events as JSON lines to FILE or stdout")
    p.add_argument("--exit-at-end", action="store_true",
                   help="after the last frame, deliver the outbox (or find the server unreachable) and exit")
    p.add_argument("--store", default=default_store_path(), help="local SQLite file (gallery cache, outbox)")
    p.add_argument("--screen-port", type=int, default=8765, help="port of the screen on 127.0.0.1")
    p.add_argument("--fps", type=float, default=5.0, help="frame rate of a folder of images")
    p.add_argument("--regreet-after", type=float, metavar="SECONDS",
                   help="out of sight this long before a citizen is greeted again (default: server config)")
    p.add_argument("--detect-max-side", type=int, default=GreeterSettings.detect_max_side,
                   help="longer side of the frame copy faces are found on (smaller is faster)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the server")
    p.add_argument("--blink-window", type=float, default=BlinkPolicy.window_s, metavar="SECONDS",
                   help="time the citizen has to blink before the case file opens (default %(default)s)")
    return p


def parse_args(argv=None, parser=None):
    p = parser or build_parser()
    args = p.parse_args(argv)
    if not args.token:
        p.error("--token is required (or set CIVIC_DEVICE_TOKEN)")
    return args


def run_device(args, name, make_front_end, pace=None):
    """Build the parts a device runs on (shared by kiosk and robot), then run the agent
    until the source ends, SIGTERM or Ctrl-C. pace(open_camera, events): a source made of
    the camera, for the demo's pace (kiosk/demo.py); open_camera opens it again."""
    logging.basicConfig(level=logging.WARNING, format=f"{name}: %(levelname)s %(message)s")
    events = open_events(args.events)
    sys.stdout = sys.stderr   # stdout carries only events: library chatter goes to stderr
    def open_camera():
        return open_source(args.camera, realtime=args.realtime, folder_fps=args.fps)
    try:
        camera = pace(open_camera, events) if pace else open_camera()
    except SourceError as e:
        sys.exit(f"{name}: {e}")
    os.makedirs(os.path.dirname(os.path.abspath(args.store)), mode=0o700, exist_ok=True)
    try:
        store = Store(args.store)
    except (sqlite3.DatabaseError, OSError) as e:
        # never replaced here: its outbox may hold visits not yet delivered
        sys.exit(f"{name}: cannot use the device store {args.store} ({e}); move it aside to"
                 " start with an empty one (its undelivered sessions stay in it)")
    client = ApiClient(args.server, args.token, timeout=args.timeout)
    front_end, cleanup = make_front_end(args, client, events)
    agent = Agent(camera, store, Syncer(store, client, events), events, front_end,
                  GreeterSettings(detect_max_side=args.detect_max_side), args.regreet_after)
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    failed = None
    try:
        agent.run(exit_at_end=args.exit_at_end)
    except KeyboardInterrupt:
        pass
    except SourceError as e:
        failed = e     # the camera died: exit non-zero, so a supervisor restarts the device
    finally:
        cleanup()
        store.close()
        events.close()
    if failed is not None:
        sys.exit(f"{name}: {failed}")
