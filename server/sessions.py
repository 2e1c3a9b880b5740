"""Session rows as the clerk console reads them: one visit with its device, citizen and reviewer."""
from flask import abort

from .i18n import t

COLUMNS = """s.id, s.device_id, s.citizen_id, s.outcome, s.distance, s.margin,
    s.time_to_greet, s.liveness, s.snapshot_path, s.started_at, s.received_at, s.review_status,
    s.reviewed_by, s.reviewed_at, s.review_note, s.ticket_number, s.case_opened_at,
    s.candidates, s.refused_by, s.identified_by, s.face_model,
    d.name AS device_name, d.kind AS device_kind, d.site AS site,
    c.name AS citizen_name, c.id_number AS id_number, c.photo_path AS photo_path,
    c.removed_at AS citizen_removed_at, c.consent AS consent, u.username AS reviewer"""
FROM = """sessions s JOIN devices d ON d.id = s.device_id
    LEFT JOIN citizens c ON c.id = s.citizen_id LEFT JOIN users u ON u.id = s.reviewed_by"""


def session_or_404(db, session_id):
    row = db.execute(f"SELECT {COLUMNS} FROM {FROM} WHERE s.id = ?", [session_id]).fetchone()
    if row is None:
        abort(404, t("No such session."))
    return row


def recent_sessions(db, citizen_id, limit=20):
    return db.execute(f"SELECT {COLUMNS} FROM {FROM} WHERE s.citizen_id = ?"
                      " ORDER BY s.received_at DESC LIMIT ?", [citizen_id, limit]).fetchall()
