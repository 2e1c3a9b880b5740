"""The day's numbers for clerks: visits per hour per device, unknown share, time to greet,
matches clerks rejected."""
import statistics

from flask import Blueprint, render_template, request

from .auth import guard
from .database import get_db
from .requests import parse_day
from .times import day_bounds, local_today, local_zone, parse_stamp

bp = Blueprint("dashboard", __name__, url_prefix="/console")
guard(bp, "clerk")   # every view: the role is checked before it runs


def dashboard_stats(db, day):
    """The day's numbers: sessions per local hour per device, unknown share, median time to
    greet, and the share of reviewed matches that clerks rejected."""
    start, end = day_bounds(day)
    rows = db.execute(
        "SELECT s.received_at, s.outcome, s.time_to_greet, s.review_status, d.name AS device"
        " FROM sessions s JOIN devices d ON d.id = s.device_id"
        " WHERE s.received_at >= ? AND s.received_at < ?", [start, end]).fetchall()
    greeted = [r for r in rows if r["outcome"] == "greeted"]
    times = [r["time_to_greet"] for r in greeted if r["time_to_greet"] is not None]
    reviewed = [r for r in greeted if r["review_status"] in ("confirmed", "rejected")]
    rejected = sum(1 for r in reviewed if r["review_status"] == "rejected")
    return {
        "day": day.isoformat(),
        "total": len(rows),
        "unknown": len(rows) - len(greeted),
        "unknown_share": _share(len(rows) - len(greeted), len(rows)),
        "median_time_to_greet": round(statistics.median(times), 2) if times else None,
        "reviewed": len(reviewed),
        "rejected": rejected,
        "rejected_share": _share(rejected, len(reviewed)),
        "per_hour": _per_hour(rows),
    }


def _share(part, whole):
    return round(part / whole, 4) if whole else None


def _per_hour(rows):
    """{device: [24 counts by local hour]}, devices sorted by name."""
    zone = local_zone()
    counts = {}
    for row in rows:
        hour = parse_stamp(row["received_at"]).astimezone(zone).hour
        counts.setdefault(row["device"], [0] * 24)[hour] += 1
    return dict(sorted(counts.items()))


@bp.route("/dashboard", endpoint="index")
def dashboard():
    day = parse_day(request.args.get("day", "")) or local_today()
    return render_template("console/dashboard.html", stats=dashboard_stats(get_db(), day))
