"""The kiosk screen in real Chromium: idle, a greeting in large type, "please see a clerk";
and, without a browser, the desk and the agent behind its Done and "type your ID number"."""
import json
import re
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest

from browser import screenshot
from device.agent import ID_ENTRY_WAIT_S, Agent
from device.events import EventLog
from device.greeter import Outcome, Track
from kiosk.casefile_screen import CaseFileDesk, KioskFlow
from kiosk.presenter import KioskCaseFilePresenter
from kiosk.screen import ScreenServer, ScreenState


@pytest.fixture
def screen():
    state = ScreenState(hold_s=60)
    server = ScreenServer(state, port=0).start()
    yield state, server
    server.stop()


def wait_for_mode(page, mode):
    page.wait_for_selector(f'#screen[data-mode="{mode}"]')


def test_screen_shows_idle_greeting_and_unknown(chromium_page, screen):
    state, server = screen
    page = chromium_page
    page.goto(server.url)
    wait_for_mode(page, "idle")
    assert "欢迎光临" in page.inner_text("#screen")
    screenshot(page, "kiosk_idle")

    state.show("greeting", "Hello, Barack Obama!", "Barack Obama", "en")
    wait_for_mode(page, "greeting")
    assert page.inner_text("#greeting-text") == "Hello, Barack Obama!"
    size = page.eval_on_selector("#greeting-text", "e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 48  # readable from a step away
    screenshot(page, "kiosk_greeting_en")

    state.show("greeting", "王小明，您好！", "王小明", "zh")
    page.wait_for_selector('#greeting-text:text-is("王小明，您好！")')  # the page's CSP forbids eval
    screenshot(page, "kiosk_greeting_zh")

    state.show("unknown")
    wait_for_mode(page, "unknown")
    assert "请到柜台咨询工作人员" in page.inner_text("#screen")
    assert "Please see a clerk" in page.inner_text("#screen")
    assert "Barack" not in page.inner_text("#screen")
    screenshot(page, "kiosk_unknown")


def test_name_is_shown_as_text_never_as_markup(chromium_page, screen):
    state, server = screen
    chromium_page.goto(server.url)
    state.show("greeting", 'Hello, <img src=x onerror="document.title=1">!', "x", "en")
    wait_for_mode(chromium_page, "greeting")
    assert chromium_page.query_selector("#greeting-text img") is None
    assert "<img" in chromium_page.inner_text("#greeting-text")


def test_greeting_returns_to_idle_after_hold_time():
    now = [100.0]
    state = ScreenState(hold_s=5, clock=lambda: now[0])
    state.show("greeting", "Hello, Joe Biden!", "Joe Biden", "en")
    assert state.snapshot()["mode"] == "greeting"
    now[0] += 6
    assert state.snapshot()["mode"] == "idle" and state.snapshot()["text"] == ""


def test_screen_page_loads_nothing_from_outside(screen):
    _, server = screen
    html = urllib.request.urlopen(server.url, timeout=5).read().decode()
    assert not re.search(r'(src|href)="(https?:)?//', html)
    state = json.loads(urllib.request.urlopen(server.url + "state", timeout=5).read())
    assert state["mode"] == "idle"
    assert server.url.startswith("http://127.0.0.1:")


# --- Done and the idle screen's ID button: the desk and the agent, without a browser -------------


def a_visit(track=None, session_id="s1", citizen_key="c_1"):
    return SimpleNamespace(track=track or object(), greeting="林晓梅，您好！", name="林晓梅", language="zh",
                           citizen_key=citizen_key, session={"id": session_id})


@pytest.fixture
def desk_and_presenter():
    state = ScreenState(hold_s=60)
    desk = CaseFileDesk(client=None, screen=state)
    ended, asked = [], []
    desk.ender, desk.asker = ended.append, (lambda: asked.append(True))
    presenter = KioskCaseFilePresenter(state, None, desk)
    yield SimpleNamespace(state=state, desk=desk, presenter=presenter, ended=ended, asked=asked)
    presenter.close()


def test_done_clears_the_screen_tells_the_agent_and_the_visits_late_steps_show_nothing(desk_and_presenter):
    k = desk_and_presenter
    visit = a_visit()
    k.presenter.on_case_file(visit, {"cases": [], "second_factor": False})
    assert k.desk.state()["mode"] == "casefile"
    k.desk.done()
    assert k.desk.state()["mode"] is None and k.state.snapshot()["mode"] == "idle"
    assert k.ended == [visit.track]
    # the flow's worker may still have the ticket and a verdict for this visit on the way
    k.presenter.on_ticket(visit, "012", "3", "2026-12-01")
    k.presenter.on_liveness_failed(visit)
    assert k.desk.state()["mode"] is None and k.state.snapshot()["mode"] == "idle"
    # the next visitor is shown as ever
    k.presenter.on_case_file(a_visit(session_id="s2"), {"cases": [], "second_factor": False})
    assert k.desk.state()["mode"] == "casefile"


def test_the_idle_id_button_opens_the_keypad_asks_for_the_face_and_keeps_what_was_typed(desk_and_presenter):
    k = desk_and_presenter
    k.desk.identifier = lambda visit, number, on_result: on_result("no_match")
    state = k.desk.start_typing()
    assert state["mode"] == "identify" and k.state.snapshot()["mode"] == "identify"
    assert "身份证" in state["prompt"] and "ID number" in state["english"]
    assert k.asked == [True]
    # OK before the camera found the face: look at the screen, asked again (the number stays: JS)
    assert k.desk.submit_id_number("44010619800101007X")["id_status"] == "no_face"
    assert k.asked == [True, True]
    # the agent made the face at the screen an unknown visitor: the ID path goes on for it
    stranger = a_visit(session_id="u1", citizen_key=None)
    k.presenter.on_unknown(stranger)
    assert k.desk.submit_id_number("44010619800101007X")["id_status"] == "no_match"
    k.desk.done()
    assert k.ended == [stranger.track]


def test_the_idle_id_button_never_replaces_a_visit_on_screen(desk_and_presenter):
    k = desk_and_presenter
    k.presenter.on_case_file(a_visit(), {"cases": [], "second_factor": False})
    assert k.desk.start_typing()["mode"] == "casefile" and k.asked == []


def test_the_kiosk_flow_hands_the_desk_the_agents_two_requests():
    desk = CaseFileDesk(client=None)
    agent = SimpleNamespace(end_visit=object(), want_id_entry=object())
    KioskFlow(desk, SimpleNamespace(), None, EventLog()).attach_agent(agent)
    assert (desk.ender, desk.asker) == (agent.end_visit, agent.want_id_entry)


class StubGreeter:
    """The greeter's interface for the agent: tracks, and the outcomes of the next frame."""
    model_id = None
    encoded = 0

    def __init__(self):
        self.tracks, self.outcomes = [], []

    def process(self, rgb, t):
        for track in self.tracks:
            track.last_t = t
        outcomes, self.outcomes = self.outcomes, []
        return outcomes


class RecordingFrontEnd:
    """A front end with a touch screen: takes the agent, records the hooks."""

    def __init__(self):
        self.greeted, self.unknown, self.left, self.present = [], [], [], []

    def attach_agent(self, agent):
        self.agent = agent

    def on_greeted(self, visit):
        self.greeted.append(visit)

    def on_unknown(self, visit):
        self.unknown.append(visit)

    def on_left(self, track):
        self.left.append(track)

    def on_frame(self, frame, rgb, tracks):
        self.present = list(tracks)


@pytest.fixture
def agent():
    events, sessions = [], []
    log = EventLog()
    log.add_listener(events.append)
    store = SimpleNamespace(add_session=lambda session, snapshot: sessions.append(session), registry_id="r")
    front = RecordingFrontEnd()
    agent = Agent(None, store, SimpleNamespace(nudge=lambda: None), log, front)
    agent.greeter = StubGreeter()
    agent.citizens = {"c_1": {"display_name": "林晓梅", "language": "zh"}}
    clock = iter(np.arange(1.0, 100.0, 0.1))

    def frame(*outcomes):
        agent.greeter.outcomes = list(outcomes)
        agent.handle_frame(SimpleNamespace(image=np.zeros((240, 320, 3), np.uint8), t=float(next(clock))))
    return SimpleNamespace(agent=agent, front=front, events=events, sessions=sessions, frame=frame)


def a_track(track_id, size=100, citizen_key=None):
    track = Track(track_id, (20, 20 + size, 20 + size, 20), 1.0, 1.0, citizen_key=citizen_key)
    track.decision = SimpleNamespace(distance=0.5, margin=0.2, candidates=[])
    return track


def test_done_ends_the_visit_on_the_agent_and_the_face_is_not_a_new_visit_while_it_stays(agent):
    assert agent.front.agent is agent.agent        # the screen's Done reaches this agent
    her = a_track(1, citizen_key="c_1")
    agent.agent.greeter.tracks = [her]
    agent.frame(Outcome("greeted", her, 1.0))
    assert agent.front.greeted[0].track is her and agent.front.present == [her]
    agent.agent.end_visit(her)
    agent.frame()
    assert agent.front.left == [her] and agent.front.present == []
    [ended] = [e for e in agent.events if e["event"] == "visit_ended"]
    assert ended["session_id"] == agent.front.greeted[0].session["id"] and ended["reason"] == "done"
    # she is still in view and walks off: no greeting, no unknown visitor, no second "left"
    agent.frame(Outcome("greeted", her, 1.3), Outcome("unknown", her, 1.3))
    agent.frame(Outcome("left", her, 1.4))
    assert len(agent.front.greeted) == 1 and agent.front.unknown == [] and agent.front.left == [her]
    # a Done for a visit that already left changes nothing
    agent.agent.end_visit(her)
    agent.frame()
    assert len([e for e in agent.events if e["event"] == "visit_ended"]) == 1


def test_the_idle_id_button_makes_the_face_at_the_screen_an_unknown_visitor_at_once(agent):
    near, behind = a_track(1, size=160), a_track(2, size=60)
    agent.agent.greeter.tracks = [behind, near]
    agent.agent.want_id_entry()
    agent.frame()
    assert [v.track for v in agent.front.unknown] == [near]          # never the passer-by behind
    assert agent.sessions[-1]["outcome"] == "unknown"
    [event] = [e for e in agent.events if e["event"] == "unknown_visitor"]
    assert event["asked_for_id_entry"] is True
    agent.frame(Outcome("unknown", near, 2.0))      # the greeter giving up later: not a second visit
    assert len(agent.front.unknown) == 1 and len(agent.sessions) == 1


def test_the_idle_id_button_waits_for_a_face_and_done_calls_it_off(agent):
    agent.agent.want_id_entry()
    agent.frame()
    assert agent.front.unknown == []                # nobody in view yet
    someone = a_track(1)
    agent.agent.greeter.tracks = [someone]
    agent.frame()
    assert [v.track for v in agent.front.unknown] == [someone]
    agent.agent.greeter.tracks = []
    agent.frame(Outcome("left", someone, 1.5))
    agent.agent.want_id_entry()
    agent.agent.end_visit(None)                     # Done on the keypad before a face came
    agent.agent.greeter.tracks = [a_track(2)]
    agent.frame()
    assert len(agent.front.unknown) == 1
    assert ID_ENTRY_WAIT_S >= 10                    # long enough to step in front of the camera


class PressesDone(KioskCaseFilePresenter):
    """The kiosk's presenter; the citizen presses Done as soon as their case file is up."""

    def on_case_file(self, visit, summary):
        super().on_case_file(visit, summary)
        self.shown_file = self.desk.state()["mode"] == "casefile"
        self.desk.done()


@pytest.mark.video
def test_done_on_the_case_file_ends_the_visit_on_the_device(live_server, db, tmp_path):
    """The real agent over her video, the real flow and registry: Done ends her visit on the
    device (the event says so), her ticket is not put on the emptied screen, and she is not
    greeted again while she stays in front of the camera."""
    import liveness_videos
    from conftest import VIDEO
    from helpers import enrol_her, new_device, of_kind, run_agent
    enrol_her(db, name="林晓梅", language="zh")
    token = new_device(db, "kiosk-hall-a")
    parts = []

    def front_end(log, client):
        desk = CaseFileDesk(client)
        presenter = PressesDone(None, None, desk)
        flow = KioskFlow(desk, presenter, client, log, tickets=True)
        desk.identifier = flow.identify
        parts.extend([desk, presenter])
        return flow
    clip = liveness_videos.video_slice(VIDEO, tmp_path / "long.mp4", 1.0, 11.0, max_side=640)
    events, _ = run_agent(live_server.url, token, clip, tmp_path / "k.db", front_end)
    desk, presenter = parts
    [greeted] = of_kind(events, "greeted")                # once: she stayed, and was not greeted again
    assert presenter.shown_file and of_kind(events, "case_file_opened")
    [ended] = of_kind(events, "visit_ended")
    assert ended["session_id"] == greeted["session_id"] and ended["reason"] == "done"
    assert of_kind(events, "unknown_visitor") == []       # nor taken for a new, unknown visitor
    assert desk.state()["mode"] is None and desk.state()["ticket"] is None
