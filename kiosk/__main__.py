"""python -m kiosk --server URL --token TOKEN --camera SOURCE [--realtime] [--headless]
                 [--speech on|off|FILE.wav] [--events FILE|-] [--exit-at-end]
                 [--store PATH] [--screen-port PORT] [--printer file:PATH|dummy|off] [--demo]

The kiosk: the shared device runtime (device/) with a screen on 127.0.0.1 and a voice.
The token may also come from CIVIC_DEVICE_TOKEN (a command line is visible to other users).
"""
import sys

from device.cli import build_parser, parse_args, run_device
from device.speech import Speaker
from recognition.liveness import BlinkPolicy

from .casefile_screen import CaseFileDesk, KioskFlow, open_screen
from .demo import DemoSource, demo_blueprint
from .presenter import KioskCaseFilePresenter
from .printer import PrinterError, TicketPrinter, open_printer
from .screen import ScreenState


def kiosk_parser():
    """The device options (device/cli.py) and the kiosk's own."""
    parser = build_parser()
    parser.add_argument("--printer", default="off", metavar="file:PATH|dummy|off",
                        help="ESC/POS receipt printer for queue tickets, e.g. file:/dev/usb/lp0")
    parser.add_argument("--demo", action="store_true",
                        help="a video for people to watch: it waits at each stage of a visit, says"
                             " when it is over and plays again from the screen (kiosk/demo.py)")
    return parser


def kiosk_args(argv=None):
    parser = kiosk_parser()
    args = parse_args(argv, parser)
    try:
        args.ticket_printer = open_printer(args.printer)
    except PrinterError as e:
        parser.error(str(e))
    except Exception as e:   # unplugged: the kiosk still shows and says the tickets
        print(f"kiosk: printer not available, tickets are not printed: {e}", file=sys.stderr)
        args.ticket_printer = None
    return args


def main(argv=None):
    args = kiosk_args(argv)
    if args.demo and (args.headless or args.exit_at_end):
        sys.exit("kiosk: --demo waits for 'Play again' on its screen: not with --headless or --exit-at-end")

    def demo_pace(open_camera, events):
        args.demo_source = DemoSource(open_camera, events)
        return args.demo_source
    run_device(args, "kiosk", kiosk_front_end, pace=demo_pace if args.demo else None)


def kiosk_front_end(args, client, events):
    """Screen + voice, with the blink check, case file and a queue ticket per visit (on
    screen, said, and printed when a printer is set); returns (front end, cleanup)."""
    demo = getattr(args, "demo_source", None)
    if args.headless:
        screen_state, desk, stop = ScreenState(), CaseFileDesk(client), (lambda: None)
    else:
        screen_state, desk, stop = open_screen(client, events, args.screen_port,
                                               [demo_blueprint(demo)] if demo else [])
    if demo is not None:
        demo.on_over = lambda: _demo_over(desk, screen_state)
    printer = getattr(args, "ticket_printer", None)
    presenter = KioskCaseFilePresenter(screen_state, Speaker(args.speech), desk,
                                       TicketPrinter(printer) if printer is not None else None)
    # KioskFlow: the agent wires the screen's Done and "type your ID number" to itself
    front_end = KioskFlow(desk, presenter, client, events, BlinkPolicy(window_s=args.blink_window),
                          tickets=True)
    desk.identifier = front_end.identify   # an unknown visitor may type their ID number
    return front_end, stop


def _demo_over(desk, screen_state):
    """The demo's video ended: the screen says so, with "play again" (kiosk/demo.py)."""
    desk.clear()
    screen_state.show("demo_over")


if __name__ == "__main__":
    main()
