"""Time: stored in UTC ("2026-03-01T01:15:02Z"), shown and filtered in the bureau's local time."""
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context

from .i18n import current_language

STAMP = "%Y-%m-%dT%H:%M:%SZ"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # not the C locale's


def local_zone():
    """The bureau's time zone: setting TIMEZONE (e.g. "Asia/Shanghai"), else the server's."""
    name = current_app.config.get("TIMEZONE") if has_app_context() else None
    return ZoneInfo(name) if name else datetime.now().astimezone().tzinfo


def utc_stamp(moment):
    return moment.astimezone(timezone.utc).strftime(STAMP)


def parse_stamp(stamp):
    return datetime.strptime(stamp, STAMP).replace(tzinfo=timezone.utc)


def day_bounds(day):
    """UTC [start, end) stamps of a local calendar day, so a day filter is an index range."""
    start = datetime.combine(day, time.min, tzinfo=local_zone())
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=local_zone())
    return utc_stamp(start), utc_stamp(end)


def local_today():
    return datetime.now(local_zone()).date()


def localtime(stamp):
    """A stored stamp in local time as the page's language writes it (empty for None):
    "2026年3月1日 09:15:02" in Chinese, "1 Mar 2026 09:15:02" in English."""
    if not stamp:
        return ""
    try:
        moment = parse_stamp(stamp).astimezone(local_zone())
    except ValueError:
        return stamp        # not one of our stamps (a hand-made row): shown as stored, never a 500
    clock = moment.strftime("%H:%M:%S")
    if current_language() == "en":
        return f"{moment.day} {MONTHS[moment.month - 1]} {moment.year} {clock}"
    return f"{moment.year}年{moment.month}月{moment.day}日 {clock}"


def local_clock(stamp):
    """A stored stamp's local time of day only ("09:15:02"), for a page about one day."""
    return localtime(stamp).rsplit(" ", 1)[-1]


def init_app(app):
    app.jinja_env.filters["localtime"] = localtime
    app.jinja_env.filters["clock"] = local_clock
