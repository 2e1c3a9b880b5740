"""`flask --app app ...` commands: thin click wrappers over the plain modules.

Each command turns the module's own error into one readable line and a non-zero exit.
"""
import json
import os
import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from recognition import models

from . import calibration, disk, faces, importer, purge, reencode
from .auth import UserError, create_user
from .database import get_db
from .devices import DEVICE_KINDS, DeviceError, register_device, revoke_device


def read_password():
    """CIVIC_PASSWORD when there is no terminal (scripts, CI), else a hidden prompt."""
    if not sys.stdin.isatty():
        password = os.environ.get("CIVIC_PASSWORD")
        if not password:
            raise click.ClickException("no terminal to ask for a password: set CIVIC_PASSWORD")
        return password
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@click.command("create-user")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "clerk"]), required=True)
@with_appcontext
def create_user_command(username, role):
    """Create a user; the password comes from a prompt or CIVIC_PASSWORD."""
    try:
        create_user(get_db(), username, read_password(), role)
    except UserError as e:
        raise click.ClickException(str(e))
    click.echo(f"created {role} {username}")


@click.command("import-records")
# No dir_okay=False: click's usage error is three lines; the importer says "is a folder" in one.
@click.argument("records", type=click.Path())
@click.option("--photos", required=True, type=click.Path(),
              help="Folder or zip holding the files named in the photo column.")
@click.option("--cases", type=click.Path(), help="Optional CASES.csv.")
@click.option("--report", type=click.Path(dir_okay=False, writable=True),
              help="Write the row-by-row report (CSV) here.")
@with_appcontext
def import_records_command(records, photos, cases, report):
    """Import citizen records with their photos (and optionally their cases).

    Prints `imported N, updated N, unchanged N, rejected N`; rejected rows and their reasons
    go to stderr and to --report. Exits non-zero when the import could not run at all (the
    report file is tried first) or, after it, the report could not be written.
    """
    if report:
        _check_writable(report)
    settings = importer.Settings.from_config(current_app.config)
    try:
        result = importer.run_import(get_db(), records, photos, cases, settings)
    except (importer.ImportFailed, faces.ModelChanged) as e:
        raise click.ClickException(str(e))
    except Exception as e:   # a full disk, a photo folder that went away: one line, not 40
        if not (isinstance(e, OSError) or disk.is_full(e)):
            raise
        raise click.ClickException(importer.stopped_message(e, current_app.config))
    _echo_problems(result.problems(), report)
    click.echo(result.summary_line())
    if report:
        try:
            importer.write_report(report, result)
        except OSError as e:  # written to a moment ago: a full disk, say; the import is done
            raise click.ClickException(f"report: cannot write {report} ({e.strerror});"
                                       " the import itself is complete")


def _check_writable(report):
    """ClickException unless the report file can be written: found out after the import, the
    rows were committed and the command ended in a traceback instead of a report."""
    if not os.path.isdir(os.path.dirname(os.path.abspath(report))):
        raise click.ClickException(f"report: folder does not exist: {os.path.dirname(report)}")
    existed = os.path.exists(report)
    try:
        with open(report, "a"):
            pass
    except OSError as e:
        raise click.ClickException(f"report: cannot write {report} ({e.strerror})")
    if not existed:
        os.remove(report)  # no empty report left behind if the import cannot run


def _echo_problems(problems, report, limit=20):
    for row in problems[:limit]:
        click.echo(f"{row.file} line {row.line} {row.id_number}: {row.outcome}: {row.reason}", err=True)
    if len(problems) > limit:
        more = "see the report" if report else "use --report for all"
        click.echo(f"... and {len(problems) - limit} more rejected rows ({more})", err=True)


@click.command("register-device")
@click.argument("name")
@click.option("--kind", type=click.Choice(DEVICE_KINDS), required=True)
@click.option("--site", default="", help="Service hall the device stands in.")
@with_appcontext
def register_device_command(name, kind, site):
    """Register a kiosk or robot and print its token (shown only this once)."""
    try:
        token = register_device(get_db(), name, kind, site)
    except DeviceError as e:
        raise click.ClickException(str(e))
    click.echo(f"registered {kind} {name}; its token (shown only once, store it on the device):")
    click.echo(token)


@click.command("revoke-device")
@click.argument("name")
@with_appcontext
def revoke_device_command(name):
    """Revoke a device's token: its next request gets 401."""
    try:
        revoke_device(get_db(), name)
    except DeviceError as e:
        raise click.ClickException(str(e))
    click.echo(f"revoked {name}")


@click.command("purge")
@click.option("--days", type=click.IntRange(min=0), default=None,
              help="Retention in days for this run (default: the retention_days setting).")
@with_appcontext
def purge_command(days):
    """Delete device snapshots older than the retention setting; session records stay."""
    db = get_db()
    days = purge.retention_days(db) if days is None else days
    purged, failed = purge.purge_snapshots(db, current_app.config["SNAPSHOTS_DIR"], days)
    click.echo(f"purged {purged} snapshots older than {days} days"
               + (f"; {failed} could not be deleted" if failed else ""))
    purge.purge_crop_signatures(db)   # replayed-blink checks look back a window, no further
    swept = purge.sweep_orphans(db, current_app.config)   # what a killed process left
    if any(swept.values()):
        click.echo("removed files no record refers to: "
                   + ", ".join(f"{n} {what}" for what, n in swept.items()))
    if failed:
        raise SystemExit(1)


@click.command("calibrate")
@with_appcontext
def calibrate_command():
    """Measure the registry's false-match curve now; print it and the thresholds as JSON."""
    report = calibration.measure_registry(get_db())
    click.echo(json.dumps(report, indent=1, ensure_ascii=False))


@click.command("reencode")
@click.option("--model", "model_name", type=click.Choice(models.names()), required=True,
              help="The face model to move the registry to.")
@with_appcontext
def reencode_command(model_name):
    """Re-encode every face template with another face model, then switch the registry to it.

    Resumable: a run stopped at any point (even kill -9) goes on where it was when started
    again; the registry greets on the old model until the new one is complete. Templates
    whose source image is gone are listed and dropped.
    """
    config = current_app.config
    db = get_db()
    bar = None

    def progress(done, total):
        nonlocal bar
        if not sys.stderr.isatty():      # a service or a pipe: a line a batch, not a bar
            click.echo(f"{done}/{total} encoded with {model_name}", err=True)
            return
        if bar is None and total:
            bar = click.progressbar(length=total, label=f"encoding with {model_name}", file=sys.stderr)
            bar.__enter__()
        if bar is not None:
            bar.update(done - bar.pos)
    try:
        result = reencode.reencode(db, models.get(model_name), config["PHOTOS_DIR"],
                                   config["SNAPSHOTS_DIR"], config["IMPORT_WORKERS"], progress)
    except (reencode.ReencodeFailed, models.UnknownModel) as e:
        raise click.ClickException(str(e))
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    for template_id, citizen_id, reason in result.dropped:
        click.echo(f"dropped template {template_id} of citizen {citizen_id}: {reason}", err=True)
    for review_id, reason in result.held_kept:
        click.echo(f"held record {review_id} stays on the old model: {reason}", err=True)
    click.echo(result.summary_line())


COMMANDS = (create_user_command, import_records_command, register_device_command,
            revoke_device_command, purge_command, calibrate_command, reencode_command)
