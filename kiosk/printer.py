"""The kiosk's receipt printer: a queue ticket on paper, over ESC/POS (python-escpos).

    --printer file:/dev/usb/lp0   a USB printer through the kernel's line-printer device
    --printer dummy               keep the bytes in memory (tests, a kiosk without paper)

Chinese lines go out in GB18030 inside the printer's Chinese mode (FS & ... FS .), which the
receipt printers sold in China understand; the number and the English line are plain ASCII.
"""
import logging

from device.phrases import CATALOGUE

log = logging.getLogger(__name__)

CHINESE_ON, CHINESE_OFF = b"\x1c\x26", b"\x1c\x2e"


class PrinterError(ValueError):
    pass


def open_printer(spec):
    """An escpos printer from a --printer value, or None for "off"/empty."""
    if not spec or spec == "off":
        return None
    from escpos.printer import Dummy, File    # imported only on kiosks that print
    if spec == "dummy":
        return Dummy()
    if spec.startswith("file:") and len(spec) > 5:
        return File(spec[5:])
    raise PrinterError(f"--printer must be file:PATH, dummy or off, not {spec!r}")


class TicketPrinter:
    """Prints one ticket per visit; a jammed or missing printer never stops the kiosk."""

    def __init__(self, printer, hall=None):
        self.printer = printer
        self.hall = hall or CATALOGUE["screen.title"]["zh"]

    def print_ticket(self, number, where, where_en, day):
        p = self.printer
        try:
            p.set(align="center")
            self._chinese(self.hall + "\n")
            p.text(CATALOGUE["screen.queue_ticket"]["en"] + "\n")
            p.set(align="center", double_height=True, double_width=True, bold=True)
            p.text(f"{number}\n")
            p.set(align="center", normal_textsize=True)
            self._chinese(where + "\n")
            p.text(f"{where_en}\n{day}\n")
            p.cut()
        except Exception as e:   # paper out, unplugged: the number is still on screen and said
            log.warning("ticket %s not printed: %s", number, e)
            return False
        return True

    def _chinese(self, text):
        self.printer._raw(CHINESE_ON + text.encode("gb18030") + CHINESE_OFF)
