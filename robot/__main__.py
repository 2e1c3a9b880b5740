"""python -m robot --server URL --token TOKEN --camera SOURCE [--realtime] [--headless]
                 [--speech on|off|FILE.wav] [--events FILE|-] [--exit-at-end]

The kiosk's options and agent (see `python -m kiosk`), with the robot's voice as the front
end: greeting, blink request, next step from the case file, and a queue ticket per visit.
The robot has no screen: --headless is accepted so the same command lines work for both.
"""
import logging
import os
import signal
import sys

from kiosk.__main__ import build_parser, parse_args
from kiosk.agent import Agent
from kiosk.camera import SourceError, open_source
from kiosk.casefile import CaseFileClient, CaseFileFlow
from kiosk.events import open_events
from kiosk.greeter import GreeterSettings
from kiosk.speech import Speaker
from kiosk.store import Store
from kiosk.sync import Syncer
from recognition.liveness import BlinkPolicy

from .voice import RobotVoice

SPEECH_BACKLOG = 32   # a robot says every step of a visit; the kiosk's voice may drop stale ones


def default_store_path():
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "civic-robot", "robot.db")


def robot_args(argv=None):
    parser = build_parser("python -m robot", "The robot receptionist: greet, check liveness, "
                          "tell the next step and a queue ticket, by voice.")
    parser.set_defaults(store=default_store_path())
    return parse_args(argv, parser)


def main(argv=None):
    args = robot_args(argv)
    logging.basicConfig(level=logging.WARNING, format="robot: %(levelname)s %(message)s")
    events = open_events(args.events)
    sys.stdout = sys.stderr   # stdout carries only events
    try:
        camera = open_source(args.camera, realtime=args.realtime, folder_fps=args.fps)
    except SourceError as e:
        sys.exit(f"robot: {e}")
    os.makedirs(os.path.dirname(os.path.abspath(args.store)), exist_ok=True)
    store = Store(args.store)
    client = CaseFileClient(args.server, args.token, timeout=args.timeout)
    voice = RobotVoice(Speaker(args.speech, backlog=SPEECH_BACKLOG), events)
    front_end = CaseFileFlow(voice, client, events, BlinkPolicy(window_s=args.blink_window),
                             tickets=True)
    agent = Agent(camera, store, Syncer(store, client, events), events, front_end,
                  GreeterSettings(detect_max_side=args.detect_max_side), args.regreet_after)
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    try:
        agent.run(exit_at_end=args.exit_at_end)
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
        events.close()


if __name__ == "__main__":
    main()
