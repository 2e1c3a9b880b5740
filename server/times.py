"""Time: stored in UTC ("2026-03-01T01:15:02Z"), shown and filtered in the bureau's local time."""
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context

STAMP = "%Y-%m-%dT%H:%M:%SZ"


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
    """'2026-03-01 09:15:02' in local time, for pages (empty for None)."""
    if not stamp:
        return ""
    return parse_stamp(stamp).astimezone(local_zone()).strftime("%Y-%m-%d %H:%M:%S")


def init_app(app):
    app.jinja_env.filters["localtime"] = localtime
