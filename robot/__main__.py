"""python -m robot --server URL --token TOKEN --camera SOURCE [--realtime] [--headless]
                 [--speech on|off|FILE.wav] [--events FILE|-] [--exit-at-end]

The shared device runtime (device/, the same options as `python -m kiosk`), with the robot's voice as the front
end: greeting, blink request, next step from the case file, and a queue ticket per visit.
The robot has no screen: --headless is accepted so the same command lines work for both.
"""
from device.casefile import CaseFileFlow
from device.cli import build_parser, default_store_path, parse_args, run_device
from device.speech import Speaker
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
    """The voice, with the blink check, case file and a ticket per visit; no screen."""
    voice = RobotVoice(Speaker(args.speech, backlog=SPEECH_BACKLOG), events)
    front_end = CaseFileFlow(voice, client, events, BlinkPolicy(window_s=args.blink_window),
                             tickets=True)
    return front_end, lambda: None


if __name__ == "__main__":
    main()
