"""Queue tickets: numbered per site per day with the counter to go to, listed for clerks with
their sessions and called in order; printed on an ESC/POS receipt printer at the kiosk."""
from types import SimpleNamespace

from conftest import csrf_from
from server.devices import register_device
from kiosk.casefile_screen import CaseFileDesk
from kiosk.presenter import KioskCaseFilePresenter
from kiosk.printer import TicketPrinter, open_printer
from test_casefile import audit_actions, bearer, citizen_id, opened, post_session  # noqa: F401


def ticket(client, token, session_id):
    return client.post(f"/api/v1/sessions/{session_id}/ticket", headers=bearer(token))


def test_a_ticket_names_the_citizens_counter_and_an_unknown_visitor_gets_the_general_desk(
        client, token, opened):
    greeted, unknown = opened, post_session(client, token, None)
    assert ticket(client, token, greeted).get_json()["counter"] == "3"   # the case ready at 3
    answer = ticket(client, token, unknown).get_json()
    assert (answer["ticket_number"], answer["counter"]) == ("002", "")


def test_a_greeting_alone_does_not_learn_the_citizens_counter(client, token, citizen_id):
    # a device's claim, with no blink and no case file opened: nothing about the citizen's cases
    claimed = post_session(client, token, citizen_id)
    assert ticket(client, token, claimed).get_json()["counter"] == ""


def test_clerks_see_todays_tickets_with_their_visitors_and_call_them_in_order(
        client, auth, db, token, citizen_id):
    first, second = post_session(client, token, citizen_id), post_session(client, token, None)
    ticket(client, token, first), ticket(client, token, second)
    auth.login("clerk")
    page = client.get("/console/tickets?site=Hall A", headers={"Accept-Language": "en"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "001" in html and "李娜" in html and "002" in html and "Unknown visitor" in html
    assert 'id="waiting">2<' in html

    csrf = csrf_from(html)

    def call_next():
        response = client.post("/console/tickets/call-next", data={"site": "Hall A", "csrf_token": csrf},
                               headers={"Accept-Language": "en"}, follow_redirects=True)
        return response.get_data(as_text=True)

    assert "Calling ticket 001." in call_next()
    assert "Calling ticket 002." in call_next()
    assert "No ticket is waiting." in call_next()
    called = [a["target_id"] for a in audit_actions(db, "ticket.call")]
    assert called == [first, second]


def test_another_sites_tickets_are_not_called_from_this_one(client, auth, db, token, citizen_id):
    elsewhere = register_device(db, "kiosk-b", "kiosk", site="Hall B")
    mine, theirs = post_session(client, token, citizen_id), post_session(client, elsewhere, None)
    ticket(client, token, mine), ticket(client, elsewhere, theirs)
    auth.login("clerk")
    csrf = csrf_from(client.get("/console/tickets?site=Hall A").get_data(as_text=True))
    client.post("/console/tickets/call-next", data={"site": "Hall A", "csrf_token": csrf})
    rows = db.execute("SELECT id FROM sessions WHERE ticket_called_at IS NOT NULL").fetchall()
    assert [r[0] for r in rows] == [mine]


def unknown_visit():
    return SimpleNamespace(track=object(), greeting="", name="", language="", citizen_key=None,
                           session={"id": "s"})


def test_the_kiosk_shows_says_and_prints_an_unknown_visitors_ticket(tmp_path):
    desk = CaseFileDesk(client=None)
    paper = tmp_path / "lp0"
    printer = TicketPrinter(open_printer(f"file:{paper}"))
    presenter = KioskCaseFilePresenter(None, None, desk, printer)
    presenter.on_ticket(unknown_visit(), "007", "", "2026-12-01")
    state = desk.state()
    assert state["mode"] == "ticket" and state["ticket"]["number"] == "007"
    assert state["prompt"] == "您的排队号码是7号。" and state["english"] == "Your ticket number is 7."
    assert state["ticket"]["where"] == "综合服务窗口 · General service desk"
    printer.printer.close()
    printed = paper.read_bytes()
    assert b"007" in printed and "综合服务窗口".encode("gb18030") in printed
    assert printed.endswith(b"\x1dV\x00")          # the paper is cut after each ticket


def test_a_citizens_ticket_joins_the_case_file_and_names_the_counter():
    desk = CaseFileDesk(client=None)
    printer = TicketPrinter(open_printer("dummy"))
    presenter = KioskCaseFilePresenter(None, None, desk, printer)
    visit = SimpleNamespace(track=object(), greeting="林小姐，您好！", name="林小姐", language="zh",
                            citizen_key="c_1", session={"id": "s"})
    presenter.on_case_file(visit, {"cases": [{"case_number": "TX-1", "type": "个人所得税",
                                              "status": "ready", "counter": "3",
                                              "appointment_at": None}], "second_factor": True})
    presenter.on_ticket(visit, "012", "3", "2026-12-01")
    state = desk.state()
    assert state["mode"] == "casefile" and state["cases"][0]["case_number"] == "TX-1"
    assert state["ticket"] == {"number": "012", "where": "请到3号窗口 · Counter 3"}
    assert b"012" in printer.printer.output and "请到3号窗口".encode("gb18030") in printer.printer.output


def test_a_printer_without_paper_never_stops_the_kiosk(tmp_path):
    printer = TicketPrinter(open_printer(f"file:{tmp_path}/lp0"))
    printer.printer.device.close()                  # unplugged
    assert printer.print_ticket("003", "综合服务窗口", "General service desk", "2026-12-01") is False


def test_a_citizen_with_an_appointment_today_is_sent_to_its_counter_and_the_clerk_sees_it(
        app, client, auth, db, token, citizen_id, opened):
    from server.times import local_today
    with app.app_context():
        today = local_today().isoformat()
    db.execute("INSERT INTO cases (case_number, citizen_id, type, status, counter, appointment_at,"
               " summary, created_at, updated_at) VALUES ('TX-2026-0300', ?, 'Deed tax', 'open', '5',"
               " ?, '', ?, ?)", [citizen_id, f"{today}T10:30:00", today, today])
    assert ticket(client, token, opened).get_json()["counter"] == "5"   # not the ready case's 3
    auth.login("clerk")
    html = client.get("/console/tickets?site=Hall A", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "10:30 · TX-2026-0300 · Counter 5" in html


def test_the_kiosk_and_robot_tell_todays_appointment_first():
    from datetime import date
    from device.phrases import next_step
    cases = [{"case_number": "A-1", "type": "个人所得税", "status": "ready", "counter": "3",
              "appointment_at": None},
             {"case_number": "A-2", "type": "契税", "status": "open", "counter": "5",
              "appointment_at": "2026-12-01T10:30:00"}]
    today = date(2026, 12, 1)
    assert next_step(cases, "zh", today) == "您今天10:30的契税预约（A-2），请到5号窗口。"
    assert next_step(cases, "yue", today) == "你今日10:30嘅契税預約（A-2），請去5號窗口。"
    assert next_step(cases, "en", today) == "Your 10:30 appointment today (契税, A-2): counter 5."
    assert next_step(cases, "en", date(2026, 12, 2)) == "Your 个人所得税 case A-1 is ready at counter 3."
