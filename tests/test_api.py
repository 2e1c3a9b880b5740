"""The device API: token auth, gallery deltas, idempotent session uploads, device config."""
import base64
import io
import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from PIL import Image

from conftest import FACES, person_photo
from db.queries import set_setting
from helpers import (bearer, enrol, greeted_payload, id_of, key_of, new_device, person_encoding,
                     remove_citizen, session_count, session_payload)
from recognition import models
from recognition.decision import Policy
from server import calibration
from server.devices import hash_token
from server.gallery import gallery_delta

ENDPOINTS = [("get", "/api/v1/gallery?since=0"), ("get", "/api/v1/config"),
             ("post", "/api/v1/sessions")]


def jpeg_bytes(path=None, size=(320, 240)):
    img = Image.open(path) if path else Image.new("RGB", size, (120, 90, 60))
    out = io.BytesIO()
    img.convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()


# --- devices and tokens ----------------------------------------------------------------------

def test_register_device_prints_token_once_and_stores_only_its_hash(runner, db):
    result = runner.invoke(args=["register-device", "hall-a-1", "--kind", "kiosk", "--site", "Hall A"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert len(token) >= 40
    row = db.execute("SELECT * FROM devices WHERE name = 'hall-a-1'").fetchone()
    assert row["kind"] == "kiosk" and row["site"] == "Hall A"
    assert row["token_hash"] == hash_token(token) and token not in row["token_hash"]
    assert db.execute("SELECT count(*) FROM audit_log WHERE action = 'device.register'"
                      " AND target_id = 'hall-a-1'").fetchone()[0] == 1


@pytest.mark.parametrize("args, message", [
    (["register-device", "x", "--kind", "toaster"], "Invalid value"),
    (["register-device", "kiosk-1", "--kind", "kiosk"], "already exists"),
    (["revoke-device", "nobody"], "no device named"),
])
def test_device_commands_refuse_bad_input_with_one_line(runner, token, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output


def test_revoked_device_gets_401_at_once(runner, client, db, token):
    assert client.get("/api/v1/config", headers=bearer(token)).status_code == 200
    result = runner.invoke(args=["revoke-device", "kiosk-1"])
    assert result.exit_code == 0, result.output
    response = client.get("/api/v1/config", headers=bearer(token))
    assert response.status_code == 401
    assert response.get_json() == {"error": {"status": 401, "message": "device token revoked"}}
    assert db.execute("SELECT count(*) FROM audit_log WHERE action = 'device.revoke'").fetchone()[0] == 1


@pytest.mark.parametrize("method, url", ENDPOINTS)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "Basic YWRtaW46eA=="}])
def test_api_needs_a_device_token(client, token, method, url, headers):
    response = getattr(client, method)(url, headers=headers, json={})
    assert response.status_code == 401
    assert response.get_json()["error"]["status"] == 401


def test_requests_update_last_seen(client, db, token):
    assert db.execute("SELECT last_seen_at FROM devices").fetchone()[0] is None
    client.get("/api/v1/config", headers=bearer(token))
    assert db.execute("SELECT last_seen_at FROM devices").fetchone()[0] is not None


# --- gallery -------------------------------------------------------------------------------

def decode_templates(upsert):
    return [np.frombuffer(base64.b64decode(t), dtype="<f4") for t in upsert["templates"]]


def test_gallery_full_sync_holds_templates_and_names_but_no_id_numbers_or_phones(client, db, token):
    obama = enrol(db, "barack_obama")
    enrol(db, "joe_biden", language="zh", name="拜登")
    response = client.get("/api/v1/gallery?since=0", headers=bearer(token))
    body = response.get_json()
    assert body["full"] is True and body["removals"] == []
    by_id = {id_of(db, u["key"]): u for u in body["upserts"]}
    assert by_id[obama]["display_name"] == "Barack Obama" and by_id[obama]["language"] == "en"
    assert np.allclose(decode_templates(by_id[obama])[0], person_encoding("barack_obama"))
    assert {u["display_name"] for u in body["upserts"]} == {"Barack Obama", "拜登"}
    text = response.get_data(as_text=True)
    assert "13800000000" not in text and "id_number" not in text and "phone" not in text


def test_gallery_delta_has_only_changes_since_and_removals(client, db, token):
    obama = enrol(db, "barack_obama")
    first = client.get("/api/v1/gallery?since=0", headers=bearer(token)).get_json()
    biden = enrol(db, "joe_biden")
    remove_citizen(db, obama)
    delta = client.get(f"/api/v1/gallery?since={first['seq']}", headers=bearer(token)).get_json()
    assert delta["full"] is False
    assert [u["key"] for u in delta["upserts"]] == [key_of(db, biden)]
    assert delta["removals"] == [key_of(db, obama)]
    again = client.get(f"/api/v1/gallery?since={delta['seq']}", headers=bearer(token)).get_json()
    assert again["upserts"] == [] and again["removals"] == [] and again["seq"] == delta["seq"]
    # names and templates that left the registry are on record; an empty poll is not
    synced = db.execute("SELECT detail FROM audit_log WHERE action = 'gallery.sync'"
                        " ORDER BY id").fetchall()
    assert [json.loads(r["detail"]) for r in synced] == [{"pulls": 2, "citizens": 2, "full": 1, "since": 0}]


def test_citizen_without_consent_or_templates_is_a_removal(client, db, token):
    held = enrol(db, "kit_harington")
    seq = client.get("/api/v1/gallery?since=0", headers=bearer(token)).get_json()["seq"]
    no_consent = enrol(db, "barack_obama")
    db.execute("UPDATE citizens SET consent = 0 WHERE id = ?", [no_consent])
    no_face = enrol(db, "joe_biden", encodings=[])
    body = client.get(f"/api/v1/gallery?since={seq}", headers=bearer(token)).get_json()
    assert body["upserts"] == []
    assert sorted(body["removals"]) == sorted([key_of(db, no_consent), key_of(db, no_face)])
    # a device starting over drops its cache: a full sync need not walk the withdrawn
    full = client.get("/api/v1/gallery?since=0", headers=bearer(token)).get_json()
    assert [u["key"] for u in full["upserts"]] == [key_of(db, held)]
    assert key_of(db, no_consent) not in full["removals"]


def test_a_halls_full_sync_walks_its_own_citizens_not_every_sites(db):
    set_setting(db, "gallery.by_site", True)
    encoding = person_encoding("joe_biden")
    elsewhere = [enrol(db, "joe_biden", encodings=[encoding]) for _ in range(6)]
    ours = enrol(db, "barack_obama")
    db.execute(f"UPDATE citizens SET district = 'Hall B' WHERE id IN ({','.join('?' * 6)})", elsewhere)
    db.execute("UPDATE citizens SET district = 'Hall A' WHERE id = ?", [ours])
    page = gallery_delta(db, 0, limit=2, site="Hall A")
    assert [id_of(db, u["key"]) for u in page["upserts"]] == [ours]
    assert page["removals"] == [] and page["more"] is False      # one pull, not four


def test_gallery_pages_end_on_whole_sequence_numbers(db):
    encoding = person_encoding("barack_obama")
    ids = [enrol(db, "barack_obama", encodings=[encoding]) for _ in range(5)]
    db.execute("UPDATE citizens SET sync_seq = 2 WHERE id IN (?, ?)", ids[1:3])
    seen, since, more = [], 0, True
    while more:
        page = gallery_delta(db, since, limit=2)
        seen += [id_of(db, u["key"]) for u in page["upserts"]]
        since, more = page["seq"], page["more"]
    assert sorted(seen) == ids


def test_gallery_since_must_be_a_number(client, token):
    response = client.get("/api/v1/gallery?since=abc", headers=bearer(token))
    assert response.status_code == 400 and "since" in response.get_json()["error"]["message"]


def test_gallery_starts_over_when_device_is_ahead_of_server(client, db, token):
    obama = enrol(db, "barack_obama")
    body = client.get("/api/v1/gallery?since=999", headers=bearer(token)).get_json()
    assert body["full"] is True and [u["key"] for u in body["upserts"]] == [key_of(db, obama)]


# --- sessions ------------------------------------------------------------------------------

def test_session_upload_is_idempotent(client, db, token):
    obama = enrol(db, "barack_obama")
    payload = greeted_payload(db, obama, distance=0.31, margin=0.3, time_to_greet=0.4)
    first = client.post("/api/v1/sessions", json=payload, headers=bearer(token))
    assert first.status_code == 201, first.get_json()
    replay = client.post("/api/v1/sessions", json=payload, headers=bearer(token))
    assert replay.status_code == 200
    assert replay.get_json() == first.get_json()
    assert session_count(db, id=payload["id"]) == 1
    assert first.get_json()["citizen_key"] == key_of(db, obama) and first.get_json()["distance"] == 0.31
    audits = db.execute("SELECT actor_type, actor_name FROM audit_log WHERE action = 'session.upload'"
                        ).fetchall()
    assert [tuple(a) for a in audits] == [("device", "kiosk-1")]


def test_session_with_jpeg_snapshot_is_saved(app, client, db, token):
    payload = session_payload()
    data = {"session": json.dumps(payload),
            "snapshot": (io.BytesIO(jpeg_bytes(person_photo("kit_harington", 2))), "face.jpg")}
    response = client.post("/api/v1/sessions", data=data, headers=bearer(token),
                           content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["snapshot"] is True
    path = db.execute("SELECT snapshot_path FROM sessions").fetchone()[0]
    saved = Image.open(f"{app.config['SNAPSHOTS_DIR']}/{path}")
    assert saved.format == "JPEG" and saved.size == (630, 374)


def test_session_id_of_another_device_is_a_conflict(client, db, token):
    other = new_device(db, "kiosk-2")
    payload = session_payload()
    assert client.post("/api/v1/sessions", json=payload, headers=bearer(token)).status_code == 201
    response = client.post("/api/v1/sessions", json=payload, headers=bearer(other))
    assert response.status_code == 409
    assert session_count(db) == 1


def test_device_reads_back_only_its_own_sessions(client, db, token):
    other = new_device(db, "kiosk-2")
    payload = session_payload()
    client.post("/api/v1/sessions", json=payload, headers=bearer(token))
    assert client.get(f"/api/v1/sessions/{payload['id']}", headers=bearer(token)).status_code == 200
    assert client.get(f"/api/v1/sessions/{payload['id']}", headers=bearer(other)).status_code == 404


BAD_FIELDS = [
    ({"id": "not-a-uuid"}, "id"),
    ({"id": 12}, "id"),
    ({"id": None}, "id"),
    ({"outcome": "maybe"}, "outcome"),
    ({"outcome": "greeted"}, "citizen_key"),
    ({"outcome": "greeted", "citizen_key": 1}, "citizen_key"),
    ({"outcome": "greeted", "citizen_key": ""}, "citizen_key"),
    ({"outcome": "unknown", "citizen_key": "c_x"}, "citizen_key"),
    ({"candidates": [{"key": "c_x", "distance": float("nan")}]}, "distance"),
    ({"candidates": [{"key": "c_x"}] * 6}, "candidates"),
    ({"refused_by": "luck"}, "refused_by"),
    ({"distance": "close"}, "distance"),
    ({"distance": -1}, "distance"),
    ({"margin": True}, "margin"),
    ({"time_to_greet": [1]}, "time_to_greet"),
    ({"liveness": "yes"}, "liveness"),
    ({"started_at": "yesterday"}, "started_at"),
    ({"started_at": "2026-01-01T10:00:00"}, "started_at"),
    ({"started_at": 1700000000}, "started_at"),
]


@pytest.mark.parametrize("fields, word", BAD_FIELDS)
def test_bad_session_fields_get_400_json(client, db, token, fields, word):
    response = client.post("/api/v1/sessions", json=session_payload(**fields), headers=bearer(token))
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["status"] == 400 and word in error["message"]
    assert session_count(db) == 0


@pytest.mark.parametrize("kwargs", [
    {"data": "{not json", "content_type": "application/json"},
    {"data": "[1, 2]", "content_type": "application/json"},
    {"data": "id=1", "content_type": "application/x-www-form-urlencoded"},
    {"data": b"\x00\xff" * 10, "content_type": "application/octet-stream"},
    {"data": {"nothing": "here"}, "content_type": "multipart/form-data"},
    {"data": {"session": "{broken"}, "content_type": "multipart/form-data"},
])
def test_malformed_session_bodies_get_400_json(client, db, token, kwargs):
    response = client.post("/api/v1/sessions", headers=bearer(token), **kwargs)
    assert response.status_code == 400
    assert response.get_json()["error"]["status"] == 400
    assert session_count(db) == 0


@pytest.mark.parametrize("snapshot, status", [
    (b"GIF89a not a jpeg", 400),
    ((FACES / "edge" / "32bit_rgba.png").read_bytes(), 400),  # a real image, but not a JPEG
    (b"\xff\xd8\xff\xe0" + b"\x00" * 64, 400),                 # JPEG header, no image
    (jpeg_bytes(person_photo("barack_obama"))[:5000], 400),    # truncated JPEG
    (b"\xff\xd8\xff" + b"\x00" * (2 * 1024 * 1024), 413),      # over the snapshot cap
    (b"\xff\xd8\xff" + b"\x00" * (3 * 1024 * 1024), 413),      # over the whole upload cap
])
def test_bad_snapshots_are_refused(client, db, token, snapshot, status):
    data = {"session": json.dumps(session_payload()), "snapshot": (io.BytesIO(snapshot), "s.jpg")}
    response = client.post("/api/v1/sessions", data=data, headers=bearer(token),
                           content_type="multipart/form-data")
    assert response.status_code == status
    assert response.get_json()["error"]["status"] == status
    assert session_count(db) == 0


# --- config --------------------------------------------------------------------------------

def test_config_gives_policy_defaults_and_greeting_settings(client, db, token):
    body = client.get("/api/v1/config", headers=bearer(token)).get_json()
    model = models.get(models.DEFAULT)
    assert (body["model"], body["model_dims"]) == (model.id, 192)    # the gallery's templates
    assert (body["margin"], body["min_frames"]) == (model.bounds.margin, Policy.min_frames)
    # too few citizens to measure: the prior, never looser than the admin's maximum
    assert body["threshold"] == calibration.device_threshold(db, "Hall A")[0] \
        <= model.bounds.threshold_ceiling
    assert body["greeting_templates"]["en"] == "Hello, {name}!"
    set_setting(db, "greeting.templates", {"zh": "{surname}{honorific}，您好"})
    set_setting(db, "policy.threshold@mobilefacenet", 0.7)
    body = client.get("/api/v1/config", headers=bearer(token)).get_json()
    assert body["threshold"] == 0.7
    assert body["greeting_templates"]["zh"] == "{surname}{honorific}，您好"
    assert body["greeting_templates"]["en"] == "Hello, {name}!"


def test_devices_hold_only_their_sites_citizens_when_the_setting_is_on(client, db, auth):
    from server.devices import register_device
    east = register_device(db, "kiosk-east", "kiosk", site="Hall A")
    west = register_device(db, "kiosk-west", "kiosk", site="Hall B")
    in_a, in_b, anywhere = (enrol(db, "barack_obama"), enrol(db, "joe_biden"),
                            enrol(db, "kit_harington"))
    db.execute("UPDATE citizens SET district = 'Hall A' WHERE id = ?", [in_a])
    db.execute("UPDATE citizens SET district = 'Hall B' WHERE id = ?", [in_b])

    def held(token, since=0):
        body = client.get(f"/api/v1/gallery?since={since}", headers=bearer(token)).get_json()
        return ({id_of(db, u["key"]) for u in body["upserts"]},
                {id_of(db, k) for k in body["removals"]}, body["seq"])

    set_setting(db, "gallery.by_site", False)               # a registry that turned it off
    assert held(east)[0] == {in_a, in_b, anywhere}          # off: everyone
    _, _, seq = held(west)
    auth.login()
    token = auth.csrf_token("/admin/settings")
    form = {"csrf_token": token, "policy.threshold": "0.5", "policy.margin": "0.06",
            "policy.min_frames": "3", "greeting.templates.zh": "{name}，您好！",
            "greeting.templates.yue": "{name}，你好！", "greeting.templates.en": "Hello, {name}!",
            "retention_days": "30", "second_factor": "on", "gallery.by_site": "on",
                "duplicates.review_budget": "0.05"}
    assert client.post("/admin/settings", data=form).status_code in (200, 302)
    assert held(east)[0] == {in_a, anywhere}
    upserts, removals, _ = held(west, since=seq)            # the next delta moves hall A out
    assert upserts == {in_b, anywhere} and removals == {in_a}


def test_device_tokens_can_be_passed_on_a_command_line(db):
    from server.devices import register_device
    tokens = [register_device(db, f"kiosk-{i}", "kiosk") for i in range(200)]
    assert not any(token.startswith("-") for token in tokens)
    assert len(set(tokens)) == 200 and all(len(token) > 40 for token in tokens)


# --- identity: sessions name citizens by key, for this registry only ---------------------------

def test_a_session_naming_a_key_this_registry_never_had_is_refused(client, db, token):
    enrol(db, "barack_obama")
    payload = greeted_payload(db, enrol(db, "joe_biden"), citizen_key="c_from_elsewhere")
    response = client.post("/api/v1/sessions", json=payload, headers=bearer(token))
    assert response.status_code == 409 and "citizen_key" in response.get_json()["error"]["message"]
    assert session_count(db) == 0


def test_a_session_recorded_for_another_registry_is_never_filed(client, db, token):
    obama = enrol(db, "barack_obama")
    payload = greeted_payload(db, obama, registry_id="r_another_registry")
    response = client.post("/api/v1/sessions", json=payload, headers=bearer(token))
    assert response.status_code == 409 and "another registry" in response.get_json()["error"]["message"]
    assert session_count(db) == 0


def test_a_visit_recorded_offline_before_the_citizen_was_removed_is_filed(client, db, token):
    # removal also clears consent, and the consent check refused the visit for good: the
    # device dead-lettered it, and so did a retry of one the server already held
    obama = enrol(db, "barack_obama")
    a_minute_ago = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    offline, delivered = (greeted_payload(db, obama, started_at=a_minute_ago) for _ in range(2))
    assert client.post("/api/v1/sessions", json=delivered, headers=bearer(token)).status_code == 201
    remove_citizen(db, obama)
    assert client.post("/api/v1/sessions", json=offline, headers=bearer(token)).status_code == 201
    assert client.post("/api/v1/sessions", json=delivered, headers=bearer(token)).status_code == 200
    late = greeted_payload(db, obama)        # dated after the removal: no device still held them
    assert client.post("/api/v1/sessions", json=late, headers=bearer(token)).status_code == 409


def test_a_citizen_removed_before_the_visit_cannot_be_greeted(client, db, token):
    obama = enrol(db, "barack_obama")
    payload = greeted_payload(db, obama, started_at="2026-01-02T10:00:00+00:00")
    db.execute("UPDATE citizens SET removed_at = '2026-01-01T00:00:00Z' WHERE id = ?", [obama])
    assert client.post("/api/v1/sessions", json=payload, headers=bearer(token)).status_code == 409
    db.execute("UPDATE citizens SET removed_at = '2026-01-03T00:00:00Z' WHERE id = ?", [obama])
    assert client.post("/api/v1/sessions", json=payload, headers=bearer(token)).status_code == 201


def test_with_site_galleries_a_citizen_of_another_site_cannot_be_greeted(client, db, token):
    other_site = enrol(db, "barack_obama")
    db.execute("UPDATE citizens SET district = 'Hall B' WHERE id = ?", [other_site])
    set_setting(db, "gallery.by_site", True)           # the token's kiosk stands in Hall A
    payload = greeted_payload(db, other_site)
    assert client.post("/api/v1/sessions", json=payload, headers=bearer(token)).status_code == 409


def test_with_site_galleries_a_device_without_a_site_holds_no_sites_citizens(client, db):
    from server.devices import register_device
    hall_b, anywhere = enrol(db, "barack_obama"), enrol(db, "joe_biden")
    db.execute("UPDATE citizens SET district = 'Hall B' WHERE id = ?", [hall_b])
    set_setting(db, "gallery.by_site", True)
    token = register_device(db, "kiosk-nosite", "kiosk")     # registered with no --site
    held = client.get("/api/v1/gallery?since=0", headers=bearer(token)).get_json()["upserts"]
    assert [c["key"] for c in held] == [key_of(db, anywhere)]   # not the whole registry
    assert client.get("/api/v1/config", headers=bearer(token)).get_json()["gallery_size"] == 1


def test_a_device_uploading_too_fast_is_paused_and_its_retries_are_not_lost(app, client, db, token):
    app.config["SESSION_DEVICE_LIMIT"] = 3
    sent = [session_payload() for _ in range(5)]
    answers = [client.post("/api/v1/sessions", json=s, headers=bearer(token)).status_code for s in sent]
    assert answers == [201, 201, 201, 429, 429]
    # a retry of a session already filed is answered, not refused: the outbox can finish
    assert client.post("/api/v1/sessions", json=sent[0], headers=bearer(token)).status_code == 200
    alerts = db.execute("SELECT count(*) FROM audit_log WHERE action = 'device.sessions_throttled'")
    assert alerts.fetchone()[0] == 1     # one alert a window, not one per refusal


def test_sessions_keep_the_nearest_candidates_and_the_rule_that_refused(client, db, token):
    obama = enrol(db, "barack_obama")
    payload = session_payload(candidates=[{"key": key_of(db, obama), "distance": 0.43},
                                          {"key": "c_other", "distance": 0.64}],
                              refused_by="threshold", distance=0.43, margin=0.21)
    assert client.post("/api/v1/sessions", json=payload, headers=bearer(token)).status_code == 201
    row = db.execute("SELECT candidates, refused_by FROM sessions").fetchone()
    assert row["refused_by"] == "threshold"
    assert [c["distance"] for c in json.loads(row["candidates"])] == [0.43, 0.64]


def test_keys_are_random_and_survive_a_rebuilt_registry_never(db):
    """Two registries never share keys, so a store of one cannot name a citizen of the other."""
    first = key_of(db, enrol(db, "barack_obama"))
    assert first.startswith("c_") and len(first) > 12
    assert db.execute("SELECT count(DISTINCT key) FROM citizens").fetchone()[0] == 1
