"""The robot receptionist on real video against a real server: it greets by name in the
citizen's language, asks for a blink, says the next step from the case file and a queue
ticket, each as real audio; a photo never opens the file; unknown visitors are sent on."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

import helpers
from helpers import (blinking_clip, enrol, enrol_her, key_of, of_kind, run_flow, still_clip,
                     wav_duration_and_rms)
from robot.voice import RobotVoice
from server.devices import register_device

pytestmark = pytest.mark.video


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("robot_clips")
    return {"blinking": blinking_clip(folder / "blinking.mp4"), "still": still_clip(folder / "still.mp4", seconds=14.0)}


@pytest.fixture
def robot(live_server, db):
    """A registered robot on a live server: (url, token)."""
    return live_server.url, register_device(db, "robot-1", "robot", site="Hall A")


def run_robot(robot, camera, tmp_path, speech):
    url, token = robot
    done = subprocess.run(
        [sys.executable, "-m", "robot", "--server", url, "--token", token, "--camera", str(camera),
         "--headless", "--speech", str(speech), "--events", "-", "--exit-at-end",
         "--store", str(tmp_path / "robot.db")],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def utterance_file(speech, n):
    """The WAV of the n-th utterance: FILE.wav, then FILE-2.wav, FILE-3.wav, ..."""
    speech = Path(speech)
    return speech if n == 1 else speech.with_name(f"{speech.stem}-{n}{speech.suffix}")


def assert_real_audio(speech, said):
    for utterance in said:
        seconds, rms = wav_duration_and_rms(utterance_file(speech, utterance["n"]))
        assert seconds > 0.5, utterance
        assert rms > 300, utterance


@pytest.mark.parametrize("language, name, greeting, step, ticket", [
    ("zh", "林小姐", "林小姐，您好！", "请到3号窗口", "您的排队号码是1号。"),
    ("en", "Ms Lin", "Hello, Ms Lin!", "is ready at counter 3", "Your ticket number is 1."),
])
def test_robot_greets_checks_liveness_and_says_next_step_and_ticket(
        robot, db, client, auth, clips, tmp_path, language, name, greeting, step, ticket):
    citizen_id = enrol_her(db, name=name, language=language)
    speech = tmp_path / "robot.wav"
    events = run_robot(robot, clips["blinking"], tmp_path, speech)

    greeted = of_kind(events, "greeted")
    assert [(g["citizen_key"], g["name"]) for g in greeted] == [(key_of(db, citizen_id), name)]
    passed = of_kind(events, "liveness_passed")
    assert len(passed) == 1 and passed[0]["t"] > greeted[0]["t"]
    assert of_kind(events, "case_file_opened")[0]["case_numbers"] == ["TX-2026-0107"]
    assert of_kind(events, "ticket_issued")[0]["ticket_number"] == "001"

    said = of_kind(events, "said")
    assert [s["what"] for s in said] == ["greeting", "blink_request", "next_step", "ticket"]
    assert {s["language"] for s in said} == {language}
    assert said[0]["text"] == greeting
    assert step in said[2]["text"] and "TX-2026-0107" in said[2]["text"]
    assert said[3]["text"] == ticket
    assert_real_audio(speech, said)

    row = db.execute("SELECT * FROM sessions WHERE id = ?", [greeted[0]["session_id"]]).fetchone()
    assert (row["liveness"], row["ticket_number"]) == ("passed", "001")
    assert row["case_opened_at"]
    # The clerk console lists the robot's visit like a kiosk's.
    auth.login("clerk")
    queue = client.get("/console/sessions.json").get_json()["sessions"]
    assert [(s["id"], s["kind"], s["name"], s["liveness"]) for s in queue] == [
        (row["id"], "robot", name, "passed")]


def test_photo_of_the_citizen_never_opens_the_case_file(robot, db, clips, tmp_path):
    """Her face held still in front of the robot: greeted, asked to blink, given a second
    chance, and refused."""
    enrol_her(db, name="Ms Lin", language="en")
    events = run_flow(*robot, clips["still"], tmp_path / "robot.db",
                      lambda log, client: RobotVoice(None, log), tickets=True)
    assert len(of_kind(events, "greeted")) == 1
    failed = of_kind(events, "liveness_failed")
    assert len(failed) == 1 and failed[0]["reason"] == "no_blink"
    assert of_kind(events, "liveness_passed") == [] and of_kind(events, "case_file_opened") == []
    assert [s["what"] for s in of_kind(events, "said")] == [
        "greeting", "blink_request", "blink_retry", "liveness_failed", "ticket"]
    assert len(of_kind(events, "liveness_retry")) == 1
    row = db.execute("SELECT * FROM sessions").fetchone()
    assert row["liveness"] == "failed" and row["case_opened_at"] is None
    assert db.execute("SELECT count(*) FROM audit_log WHERE action = 'casefile.open'"
                      ).fetchone()[0] == 0


def test_unknown_visitor_is_told_where_to_go_in_zh_and_en(robot, db, clips, tmp_path):
    enrol(db, "barack_obama")
    speech = tmp_path / "unknown.wav"
    events = run_robot(robot, clips["blinking"], tmp_path, speech)
    assert of_kind(events, "greeted") == [] and len(of_kind(events, "unknown_visitor")) == 1
    assert of_kind(events, "liveness_passed") == [] and of_kind(events, "case_file_opened") == []
    said = of_kind(events, "said")
    assert [(s["what"], s["language"]) for s in said] == [
        ("directions", "zh"), ("directions", "en"), ("ticket", "zh")]
    assert "service desk" in said[1]["text"]
    assert_real_audio(speech, said)


def test_a_robot_with_a_screen_takes_an_id_number_there_and_goes_on(live_server, db, tmp_path):
    """The camera cannot tell her from her enrolled twin; the robot offers its screen by
    voice, she types her ID number on it (the screen's own endpoint, as its page does), the
    1:1 check passes once she has blinked (liveness first), and the robot greets her and says
    her next step."""
    import threading
    import urllib.request
    from types import SimpleNamespace

    import numpy as np

    import liveness_videos
    from conftest import VIDEO
    from helpers import her_encoding, id_number, new_device, run_agent
    from recognition.liveness import BlinkPolicy
    from robot.__main__ import robot_front_end
    her = enrol_her(db, name="林小姐", language="zh")
    twin = her_encoding() + np.random.default_rng(1).normal(0, 0.002, helpers.MODEL.dims)
    enrol(db, "blinking", name="林小妹", language="zh", encodings=[twin])
    db.execute("UPDATE citizens SET id_number = ? WHERE id = ?", [id_number(1), her])
    token = new_device(db, "robot-hall-a", kind="robot")
    clip = liveness_videos.video_slice(VIDEO, tmp_path / "long.mp4", 1.0, 11.0, max_side=640)
    speech = tmp_path / "robot.wav"
    args = SimpleNamespace(headless=False, screen_port=0, speech=str(speech),
                           blink_window=BlinkPolicy.window_s)
    screen, typed = {}, []

    def type_on_the_screen():
        request = urllib.request.Request(screen["url"] + "/casefile/identify", method="POST",
                                         data=json.dumps({"id_number": id_number(1)}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            typed.append(json.load(response))

    def watch(event):
        if event["event"] == "screen":
            screen["url"] = event["url"]
        again = event["event"] == "id_number_checked" and event["result"] == "no_blink"
        if again or (event["event"] == "said" and event["what"] == "directions" and not typed):
            typed.append("sent")   # the offer is said in zh, then en: type once, and again
            threading.Thread(target=type_on_the_screen).start()   # while a blink is awaited

    def front_end(log, client):
        log.add_listener(watch)
        flow, screen["stop"] = robot_front_end(args, client, log)
        return flow
    try:
        events, _ = run_agent(live_server.url, token, clip, tmp_path / "robot.db", front_end)
    finally:
        screen["stop"]()
    said = of_kind(events, "said")
    assert "在我的屏幕上输入身份证号码" in said[0]["text"] and said[0]["what"] == "directions"
    # the screen took the number ("sent" marks each typing; answers arrive in any order)
    assert [t for t in typed if t != "sent"][0]["mode"] == "identify"
    checked = [c["result"] for c in of_kind(events, "id_number_checked")]
    assert set(checked[:-1]) <= {"no_blink"} and checked[-1] == "match"   # liveness first
    assert [g.get("identified_by") for g in of_kind(events, "greeted")] == ["id_number"]
    whats = [s["what"] for s in said]
    assert whats.index("greeting") < whats.index("next_step") and "blink_request" not in whats  # blinked before
    assert said[whats.index("greeting")]["text"] == "林小姐，您好！"
    assert_real_audio(speech, said)
    row = db.execute("SELECT * FROM sessions").fetchone()
    assert (row["identified_by"], row["citizen_id"], row["liveness"]) == ("id_number", her, "passed")


# --- what is said, from the case-file summary -------------------------------------------------

def case(number, status, counter="", appointment_at="", kind="Individual income tax"):
    return {"case_number": number, "type": kind, "status": status, "counter": counter,
            "appointment_at": appointment_at}


@pytest.mark.parametrize("cases, language, expected", [
    ([], "en", "You have no open cases. Please take a ticket."),
    ([], "zh", "您目前没有在办的业务，请取号等候。"),
    ([case("A-1", "waiting_documents"), case("A-2", "ready", "3")], "en",
     "Your Individual income tax case A-2 is ready at counter 3."),
    ([case("A-1", "open", "5", "2026-03-02T09:30:00"), case("A-2", "open", "6", "2026-03-01T14:00:00")],
     "en", "Your Individual income tax case A-2 has an appointment at 1 March, 14:00, counter 6."),
    ([case("A-2", "open", "6", "2027-03-01T14:00:00")], "zh",
     "您的Individual income tax业务 A-2 预约在2027年3月1日 14:00，请到6号窗口。"),
    ([case("A-1", "waiting_documents")], "yue", "你嘅Individual income tax業務 A-1 仲要補交文件，請攞籌等候。"),
    ([case("A-1", "ready", "2")], "fr", "您的Individual income tax业务 A-1 已可以办理，请到2号窗口。"),
])
def test_next_step_tells_the_case_that_matters_first(cases, language, expected):
    from datetime import date

    from device.phrases import next_step
    assert next_step(cases, language, today=date(2026, 2, 10)) == expected


@pytest.mark.parametrize("stamp, language, said", [
    ("2026-02-10T09:30:00", "zh", "今天 09:30"),
    ("2026-03-02T09:30:00", "yue", "3月2日 09:30"),
    ("2027-03-02T09:30:00", "zh", "2027年3月2日 09:30"),
    ("2026-02-10T09:30:00", "en", "Today 09:30"),
    ("2026-03-02T09:30:00", "en", "2 March, 09:30"),
    ("2027-03-02T09:30:00", "en", "2 March 2027, 09:30"),
    ("next week", "en", "next week"),                     # not a date: as given
])
def test_appointment_times_are_said_and_shown_the_way_each_language_writes_them(stamp, language, said):
    from datetime import date

    from device.phrases import when_text
    assert when_text(stamp, language, today=date(2026, 2, 10)) == said
