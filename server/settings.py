"""Every setting of the server, in one registry: its name, default and what it does.

Two kinds:
  - CONFIG: read once at start, from defaults -> instance/config.py -> the environment
    variable named by `env` (if any) -> a test's overrides (create_app(test_config)).
  - ADMIN: kept in the database's settings table; admins change them at /admin/settings
    (those with a `label`), and devices read the ones they need from /api/v1/config.
The README documents each one (a test reads this registry to check).

A setting that is a face distance (the match threshold, margin, 1:1 ceiling) means nothing
on another face model's scale, so its default, bounds and stored value belong to the
registry's active model (recognition/models): it is kept under "NAME@MODEL", and after
`reencode` the new model starts from its own measured defaults.
"""
import os
from dataclasses import dataclass, replace

from db.queries import get_setting, set_setting
from recognition import models
from recognition.decision import Policy

from .i18n import N_

MB = 1024 * 1024
GREETINGS = {"zh": "{name}，您好！", "yue": "{name}，你好！", "en": "Hello, {name}!"}


@dataclass(frozen=True)
class Setting:
    name: str
    default: object          # a value, or for CONFIG a function of the instance folder
    help: str
    env: str = None          # CONFIG: an environment variable that overrides the file
    kind: str = ""           # ADMIN: "float", "int", "bool" or "greetings" (how the form reads it)
    label: str = ""          # ADMIN: shown on /admin/settings; no label = not on the form
    low: float = None
    high: float = None
    distance: str = ""       # ADMIN: a face distance: the model's Bounds field of its default
    distance_range: str = ""  # ... and the Bounds field of its (low, high)

    def for_model(self, model):
        """This setting on the model's scale: its default and bounds from the model's profile,
        its help text's {placeholders} filled (help_args) with the model's bounds."""
        if not self.distance:
            return self
        bounds = model.bounds
        low, high = getattr(bounds, self.distance_range) if self.distance_range \
            else (self.low, self.high)
        return replace(self, default=getattr(bounds, self.distance), low=low, high=high)

    def key(self, model):
        """Where the value is stored: per model for a distance."""
        return f"{self.name}@{model.name}" if self.distance else self.name

    def help_for(self, model, translate=str, title=None):
        """The help text (translated) with the model's figures put in ({model},
        {duplicate_ceiling}); other braces (a greeting's {name}) are left as written. title:
        the model's title as a page writes it (marked as a name), else as it is."""
        return _fill(translate(self.help), {"duplicate_ceiling": model.bounds.duplicate_ceiling,
                                            "model": model.title if title is None else title})


class _Kept(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def _fill(text, values):
    return text.format_map(_Kept(values))


def _in_instance(name):
    return lambda instance: os.path.join(instance, name)


CONFIG = (
    Setting("DATABASE", _in_instance("civic.db"), "The SQLite database file, or a PostgreSQL"
            " server's URL (postgresql://user@host/dbname): no SQLite file is made then.",
            env="CIVIC_DATABASE_URL"),
    Setting("PHOTOS_DIR", _in_instance("photos"), "Enrolled photos, named by their SHA-256."),
    Setting("SNAPSHOTS_DIR", _in_instance("snapshots"), "Device snapshots of visitors."),
    Setting("REPORTS_DIR", _in_instance("reports"), "Row-by-row reports of web imports."),
    Setting("UPLOADS_DIR", _in_instance("uploads"), "Files of a web import while it runs."),
    Setting("FACEINDEX_DIR", _in_instance("faceindex"), "The import's 1:N index of enrolled"
            " templates (rebuilt from the database when missing or out of date)."),
    Setting("DISK_WARN_MB", 500, "Below this much free space on the instance's disk,"
            " `flask init-db` (scripts/run.sh) and /admin warn."),
    Setting("DISK_RESERVE_MB", 16, "A file of this size kept in the instance folder and deleted"
            " when the disk is full, so sign-in and audit still write while space is freed;"
            " 0: none."),
    Setting("DISK_RESERVE_PATH", _in_instance("disk-reserve"), "Where that file is kept."),
    Setting("FACE_MODEL", models.DEFAULT, "The face model a new registry greets on:"
            f" {', '.join(models.names())}. An existing registry keeps the model it was enrolled"
            " on until `flask --app app reencode --model NAME`.", env="CIVIC_FACE_MODEL"),
    Setting("MAX_CONTENT_LENGTH", 512 * MB, "Largest upload (the bulk zip of photos); every"
            " other request is capped at 4 MB before its body is read."),
    Setting("ID_NUMBER_RULE", "prc18", "prc18: 18-character PRC resident ID with its check"
            " digit; any: 1 to 32 letters and digits."),
    Setting("IMPORT_WORKERS", lambda _: os.cpu_count() or 1, "Processes that check and encode"
            " photos during an import."),
    Setting("FACE_WORKERS", lambda _: os.cpu_count() or 1, "Processes of each server process"
            " that look at faces for requests (the snapshot before a case file, the blink"
            " evidence, the ID-number crop), each loading the models once, so no request waits"
            " on another's face; 0 looks in the request's own thread.", env="CIVIC_FACE_WORKERS"),
    Setting("FACE_TIMEOUT_S", 5.0, "How long a request waits for its face to be looked at"
            " before it is answered 503 with Retry-After (the device tries again later)."),
    Setting("LOGIN_SLOW_AFTER", 3, "Failed sign-ins (for one username from one address) before"
            " each further attempt must wait, doubling."),
    Setting("LOGIN_LOCK_AFTER", 6, "Failed sign-ins for one username from one address before"
            " that address is locked out of it (others, the real user included, are not)."),
    Setting("LOGIN_LOCK_MINUTES", 15, "How long such a lock lasts; an admin can unlock sooner."),
    Setting("LOGIN_ADDRESS_LIMIT", 30, "Failed sign-ins from one address, whatever the username,"
            " within 15 minutes before it must wait."),
    Setting("LOGIN_USER_SLOW_AFTER", 5, "Failed sign-ins for one username from any addresses"
            " within 15 minutes before each further attempt must wait, doubling (not from an"
            " address the user has signed in from: a storm elsewhere never keeps them out)."),
    Setting("LOGIN_USER_LIMIT", 10, "Failed sign-ins for one username from any addresses within"
            " 15 minutes at most: past it, other addresses wait until the oldest is 15 minutes"
            " old (a wait, never a lock; the user's own addresses are not held)."),
    Setting("PROXY_HOPS", 0, "Reverse proxies in front of the server (1 behind nginx): the"
            " caller's address is then read from their X-Forwarded-For, so sign-in limits and"
            " the audit log see each client, not the proxy. 0 trusts no such header.",
            env="CIVIC_PROXY_HOPS"),
    Setting("SESSION_IDLE_MINUTES", 30, "A signed-in session ends after this long without a request."),
    Setting("SESSION_MAX_HOURS", 12, "A signed-in session ends this long after sign-in."),
    Setting("SESSION_COOKIE_SECURE", False, "Send the sign-in cookie over HTTPS only: set True"
            " when the registry is served with TLS (behind the reverse proxy)."),
    Setting("PASSWORD_HASH_METHOD", "scrypt", "werkzeug's password hash method (a cheap one"
            " only in tests)."),
    Setting("SESSION_COOKIE_HTTPONLY", True, "The sign-in cookie is not readable by scripts."),
    Setting("SESSION_COOKIE_SAMESITE", "Lax", "The sign-in cookie is not sent by other sites'"
            " forms."),
    Setting("CASEFILE_SESSION_MAX_AGE_S", 300, "A device may open a case file this long after"
            " the greeting."),
    Setting("SECOND_FACTOR_TRIES", 3, "Wrong phone digits in one visit before the details lock."),
    Setting("SECOND_FACTOR_WAIT_S", 2, "Wait after the first wrong try; doubles each time."),
    Setting("SECOND_FACTOR_CITIZEN_DAILY", 5, "Wrong phone digits for one citizen in a day, from"
            " any devices, before their case details lock until a clerk unlocks them."),
    Setting("SECOND_FACTOR_DEVICE_DAILY", 20, "Wrong phone digits one device may send in a day."),
    Setting("SESSION_DEVICE_LIMIT", 300, "Sessions one device may upload in 10 minutes before"
            " it is refused (429: its outbox sends them later) and an alert is raised."),
    Setting("CASEFILE_DEVICE_LIMIT", 30, "Case files one device may open in 10 minutes before it"
            " is paused and the admins are alerted."),
    Setting("PULL_DEVICE_LIMIT", 120, "Gallery and config pulls one device may make in 10"
            " minutes (a page of 500 citizens is one pull) before it is told to wait (429 with"
            " Retry-After) and an alert is raised."),
    Setting("HSTS_MAX_AGE_S", 31536000, "Strict-Transport-Security max-age sent with every"
            " answer over HTTPS (directly, or behind the PROXY_HOPS proxies' X-Forwarded-Proto);"
            " 0 sends none."),
    Setting("IDENTIFY_MAX_PER_HOUR", 30, "ID-number tries a device may make in an hour."),
    Setting("IDENTIFY_MAX_PER_SESSION", 3, "ID-number tries in one visit before the visitor is"
            " sent to a clerk."),
    Setting("TIMEZONE", "", "The bureau's time zone, e.g. Asia/Shanghai (the console's"
            " \"today\"); empty: the server's.", env="CIVIC_TIMEZONE"),
    Setting("PURGE_INTERVAL_SECONDS", 3600, "How often the server deletes expired snapshots"
            " (0: never; run `purge` from cron instead)."),
    Setting("PURGE_FIRST_DELAY_SECONDS", 60, "Delay of the first scheduled purge after start."),
)

ADMIN = (
    Setting("policy.threshold", None, N_("Loosest face distance that may be greeted by"
            " name ({model}); devices tighten it as the number of enrolled citizens grows. Lower"
            " is stricter."), kind="float", label=N_("Match threshold"), distance="threshold_ceiling",
            distance_range="threshold_range"),
    Setting("policy.margin", None, N_("How much closer the best citizen must be than the"
            " next one ({model})."), kind="float", label=N_("Match margin"), distance="margin",
            distance_range="margin_range"),
    Setting("policy.min_frames", Policy.min_frames, N_("Frames in a row naming the same citizen"
            " before the greeting."), kind="int", label=N_("Frames that must agree"), low=1, high=30),
    Setting("greeting.templates", GREETINGS, N_("Placeholders: {name}, {surname}, {honorific}."),
            kind="greetings", label=N_("Greeting per language")),
    Setting("retention_days", 30, N_("Device snapshots older than this are deleted; the session"
            " record stays."), kind="int", label=N_("Snapshot retention (days)"), low=1, high=3650),
    Setting("add_confirmed_templates", False, N_("A clerk-confirmed snapshot becomes an extra"
            " template for that citizen."), kind="bool",
            label=N_("Add confirmed matches as face templates")),
    Setting("second_factor", True, N_("Citizens type the last four digits of their phone before"
            " case details show."), kind="bool", label=N_("Second factor for case details")),
    Setting("gallery.by_site", True, N_("A device gets the citizens whose district is its site"
            " (and those without a district): smaller galleries name fewer strangers and greet"
            " more citizens."), kind="bool", label=N_("Each device holds only its own site's citizens")),
    Setting("duplicates.review_budget", 0.05, N_("Fraud review: how many false duplicate flags per"
            " imported record admins accept to look at, so that the same face under a second ID"
            " number is rarely missed. Higher flags more (never past distance {duplicate_ceiling})."),
            kind="float", label=N_("Duplicate review budget (false flags per record)"),
            low=0.001, high=1.0),
    Setting("calibration.target_fpir", 0.005, N_("Share of visitors who are not enrolled that the"
            " threshold alone may name as someone, per device; the registry measures its own"
            " false-match curve and gives each device the largest threshold (never looser than"
            " the match threshold) that keeps within it for that device's number of citizens."),
            kind="float", label=N_("Strangers named at most (share)"), low=0.0001, high=0.05),
    Setting("calibration.target_fmr_1to1", 0.0001, N_("ID-number check: the share of tries by"
            " someone else's face under a citizen's ID number that may pass the one-to-one face"
            " comparison (liveness and the phone digits still follow). The registry sets the"
            " distance from its measured curve."), kind="float",
            label=N_("ID-number check: false accepts at most (share)"), low=0.00001, high=0.01),
    Setting("calibration.max_threshold_1to1", None, N_("ID-number check: the loosest face distance"
            " ever accepted ({model}), whatever the measured curve allows."), kind="float",
            label=N_("ID-number check: loosest distance"), distance="one_to_one_ceiling",
            distance_range="one_to_one_range"),
    Setting("policy.evidence_frames", Policy.evidence_frames, N_("Frames of a face track whose"
            " mean template may name the citizen (threshold and margin still hold); 0 turns the"
            " rule off and only frames in a row that agree name someone.")),
    Setting("policy.unknown_after", Policy.unknown_after, "Frames of a face track without an"
            " acceptable match before the visitor counts as unknown."),
    Setting("greeting.honorifics", {"zh": "", "yue": "", "en": ""}, "Per language, what"
            " {honorific} stands for in a greeting."),
    Setting("greeting.regreet_after_s", 60, "Seconds out of sight before a citizen is greeted"
            " again."),
    Setting("device.sync_interval_s", 30, "How often devices fetch gallery changes."),
)

ON_FORM = tuple(s for s in ADMIN if s.label)
_ADMIN = {s.name: s for s in ADMIN}


def _model(db):
    from .faces import active   # settings is below faces in the import tree otherwise
    return active(db)


def on_form(db):
    """The settings on /admin/settings, on the registry's face model's scale."""
    model = _model(db)
    return tuple(spec.for_model(model) for spec in ON_FORM)


def config_defaults(instance):
    """{name: value} of every CONFIG setting for an instance folder, environment applied."""
    values = {}
    for spec in CONFIG:
        value = spec.default(instance) if callable(spec.default) else spec.default
        values[spec.name] = value
    return values


def environment_overrides():
    """{name: value} of CONFIG settings set in the environment (applied over instance/config.py)."""
    return {s.name: os.environ[s.env] for s in CONFIG if s.env and os.environ.get(s.env)}


def value(db, name, model=None):
    """An ADMIN setting's current value (its default until an admin saves one); a distance on
    the registry's face model (or the model given)."""
    spec = _ADMIN[name]
    if spec.distance:
        model = model or _model(db)
        spec = spec.for_model(model)
    stored = get_setting(db, spec.key(model), spec.default)
    if isinstance(spec.default, dict):
        return {**spec.default, **(stored or {})}  # languages added later keep their default
    return stored


def values(db):
    """{name: current value} of every ADMIN setting."""
    model = _model(db)
    return {spec.name: value(db, spec.name, model) for spec in ADMIN}


def save(db, name, new_value):
    """Store an ADMIN setting (a distance for the registry's face model); in a transaction."""
    spec = _ADMIN[name]
    set_setting(db, spec.key(_model(db) if spec.distance else None), new_value)


def markdown():
    """docs/settings.md: every setting with its default and help (a test keeps the file current)."""
    lines = ["# Settings", "",
             "Generated from `server/settings.py` by `python -m server.settings > docs/settings.md`.",
             "", "## Server configuration", "",
             "Python assignments in `instance/config.py` (e.g. `TIMEZONE = \"Asia/Shanghai\"`);"
             " an environment variable, where one is named, overrides the file.", "",
             "| setting | default | what it does |", "|---|---|---|"]
    for spec in CONFIG:
        default = "in the instance folder" if callable(spec.default) else f"`{spec.default!r}`"
        env = f" (env `{spec.env}`)" if spec.env else ""
        lines.append(f"| `{spec.name}`{env} | {default} | {spec.help} |")
    lines += ["", "## Admin settings", "",
              "Kept in the database. Those with a label are on `/admin/settings`; devices read"
              " theirs from `/api/v1/config` when they start.", "",
              "| setting | default | on the admin page as | what it does |", "|---|---|---|---|"]
    for spec in ADMIN:
        lines.append(f"| `{spec.name}` | {_default_text(spec)} | {spec.label or '—'} |"
                     f" {_help_text(spec)} |")
    return "\n".join(lines) + "\n"


def _default_text(spec):
    """`value`, or for a distance each model's default and range."""
    if not spec.distance:
        return f"`{spec.default!r}`"
    parts = []
    for model in models.PROFILES.values():
        own = spec.for_model(model)
        parts.append(f"{model.name}: `{own.default!r}` ({own.low}–{own.high})")
    return "; ".join(parts)


def _help_text(spec):
    return _fill(spec.help, {"model": "on the registry's face model",
                             "duplicate_ceiling": "the face model's duplicate ceiling"})


if __name__ == "__main__":
    print(markdown(), end="")
