"""python -m kiosk --server URL --token TOKEN --camera SOURCE [--realtime] [--headless]
                 [--speech on|off|FILE.wav] [--events FILE|-] [--exit-at-end]
                 [--store PATH] [--screen-port PORT]

The kiosk: the shared device runtime (device/) with a screen on 127.0.0.1 and a voice.
The token may also come from CIVIC_DEVICE_TOKEN (a command line is visible to other users).
"""
from device.casefile import CaseFileFlow
from device.cli import build_parser, parse_args, run_device
from device.speech import Speaker
from recognition.liveness import BlinkPolicy

from .casefile_screen import CaseFileDesk, desk_blueprint
from .presenter import KioskCaseFilePresenter
from .screen import ScreenServer, ScreenState


def main(argv=None):
    run_device(parse_args(argv, build_parser()), "kiosk", kiosk_front_end)


def kiosk_front_end(args, client, events):
    """Screen + voice, with the blink check and case file; returns (front end, cleanup)."""
    screen_state, screen, desk = ScreenState(), None, CaseFileDesk(client)
    if not args.headless:
        screen = ScreenServer(screen_state, args.screen_port, [desk_blueprint(desk)]).start()
        events.emit("screen", url=screen.url)
    front_end = CaseFileFlow(KioskCaseFilePresenter(screen_state, Speaker(args.speech), desk),
                             client, events, BlinkPolicy(window_s=args.blink_window))
    return front_end, (screen.stop if screen is not None else lambda: None)


if __name__ == "__main__":
    main()
