"""python -m robot --server URL --token TOKEN --camera SOURCE [--realtime] [--headless]
                 [--speech on|off|FILE.wav] [--events FILE|-] [--exit-at-end] [--screen-port PORT]

The shared device runtime (device/, the same options as `python -m kiosk`), with the robot's voice as the front
end: greeting, blink request, next step from the case file, and a queue ticket per visit.
Its chest screen (unless --headless) is the kiosk's screen on 127.0.0.1:PORT: what the voice
says is also shown, and a visitor the camera does not know can type their ID number there.
"""
from device.casefile import CaseFileFlow, Presenters
from device.cli import build_parser, default_store_path, parse_args, run_device
from device.speech import Speaker
from kiosk.casefile_screen import open_screen
from kiosk.presenter import KioskCaseFilePresenter
from recognition.liveness import BlinkPolicy

from .voice import RobotVoice

SPEECH_BACKLOG = 32   # a robot says every step of a visit; the kiosk's voice may drop stale ones


def robot_args(argv=None):
    parser = build_parser("python -m robot", "The robot receptionist: greet, check liveness, "
                          "tell the next step and a queue ticket, by voice.")
    parser.set_defaults(store=default_store_path("robot"))
    return parse_args(argv, parser)


def main(argv=None):
    run_device(robot_args(argv), "robot", robot_front_end)


def robot_front_end(args, client, events):
    """The voice, with the blink check, case file and a ticket per visit, and the chest
    screen unless --headless; returns (front end, cleanup)."""
    voice = RobotVoice(Speaker(args.speech, backlog=SPEECH_BACKLOG), events, screen=not args.headless)
    if args.headless:
        presenter, desk, cleanup = voice, None, (lambda: None)
    else:
        screen_state, desk, cleanup = open_screen(client, events, args.screen_port)
        # the screen first: the keypad is up by the time the voice offers it
        presenter = Presenters(KioskCaseFilePresenter(screen_state, None, desk), voice)
    front_end = CaseFileFlow(presenter, client, events, BlinkPolicy(window_s=args.blink_window),
                             tickets=True)
    if desk is not None:
        desk.identifier = front_end.identify
    return front_end, cleanup


if __name__ == "__main__":
    main()
