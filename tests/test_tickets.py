"""Queue tickets: numbered per site per day with the counter to go to, listed for clerks with
their sessions and called in order; printed on an ESC/POS receipt printer at the kiosk."""
import re
from types import SimpleNamespace

import pytest

from conftest import csrf_from
from helpers import add_session
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
        response = client.post("/console/tickets/call-next",
                               data={"site": "Hall A", "counter": "-", "csrf_token": csrf},
                               headers={"Accept-Language": "en"}, follow_redirects=True)
        return response.get_data(as_text=True)

    # neither visit opened its case file: both were sent to the general desk
    assert "Calling ticket 001 to General service desk." in call_next()
    assert "Calling ticket 002 to General service desk." in call_next()
    assert "No ticket is waiting for General service desk." in call_next()
    called = [a["target_id"] for a in audit_actions(db, "ticket.call")]
    assert called == [first, second]


def test_another_sites_tickets_are_not_called_from_this_one(client, auth, db, token, citizen_id):
    elsewhere = register_device(db, "kiosk-b", "kiosk", site="Hall B")
    mine, theirs = post_session(client, token, citizen_id), post_session(client, elsewhere, None)
    ticket(client, token, mine), ticket(client, elsewhere, theirs)
    auth.login("clerk")
    csrf = csrf_from(client.get("/console/tickets?site=Hall A").get_data(as_text=True))
    client.post("/console/tickets/call-next", data={"site": "Hall A", "counter": "-", "csrf_token": csrf})
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
    assert db.execute("SELECT ticket_counter FROM sessions WHERE id = ?", [opened]).fetchone()[0] == "5"


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


# --- routing by counter -----------------------------------------------------------------------

def ticket_at(app, db, number, counter, site="Hall A"):
    """A ticket of today as a device got it: its number and the counter it was sent to."""
    from server.times import local_today
    with app.app_context():
        day = local_today().isoformat()
    device_id = db.execute("SELECT id FROM devices WHERE site = ? ORDER BY id LIMIT 1", [site]).fetchone()[0]
    session_id = add_session(app, db, device_id)
    db.execute("UPDATE sessions SET ticket_number = ?, ticket_site = ?, ticket_day = ?,"
               " ticket_issued_at = ?, ticket_counter = ? WHERE id = ?",
               [number, site, day, "2026-12-01T01:00:00Z", counter, session_id])
    return session_id


def call(client, csrf, counter, site="Hall A"):
    data = {"site": site, "csrf_token": csrf}
    if counter is not None:
        data["counter"] = counter
    return client.post("/console/tickets/call-next", data=data, headers={"Accept-Language": "en"},
                       follow_redirects=True).get_data(as_text=True)


def called_ids(db):
    """The sessions whose tickets were called, in the order they were called."""
    return [a["target_id"] for a in audit_actions(db, "ticket.call")]


def test_call_next_takes_the_oldest_waiting_ticket_of_the_clerks_counter(app, client, auth, db, token,
                                                                          opened):
    at_3 = opened
    assert ticket(client, token, at_3).get_json()["counter"] == "3"           # 001, sent to 3
    desk, at_5, again_3 = ticket_at(app, db, "002", ""), ticket_at(app, db, "003", "5"), \
        ticket_at(app, db, "004", "3")
    auth.login("clerk")
    page = client.get("/console/tickets?site=Hall A&counter=3", headers={"Accept-Language": "en"})
    csrf = csrf_from(page.get_data(as_text=True))
    assert "Calling ticket 001 to Counter 3." in call(client, csrf, "3")
    assert "Calling ticket 004 to Counter 3." in call(client, csrf, "3")       # not 002 or 003
    assert "No ticket is waiting for Counter 3." in call(client, csrf, "3")
    assert called_ids(db) == [at_3, again_3]
    assert "Calling ticket 003 to Counter 5." in call(client, csrf, "5")
    assert "Calling ticket 002 to General service desk." in call(client, csrf, "-")
    assert called_ids(db)[2:] == [at_5, desk]
    calls = db.execute("SELECT detail FROM audit_log WHERE action = 'ticket.call' ORDER BY id").fetchall()
    assert ['"counter": "3"' in c[0] for c in calls] == [True, True, False, False]


def test_call_next_without_a_counter_calls_nobody(app, client, auth, db, token):
    ticket_at(app, db, "001", "")
    auth.login("clerk")
    csrf = csrf_from(client.get("/console/tickets?site=Hall A").get_data(as_text=True))
    assert "Choose your counter first." in call(client, csrf, None)
    assert called_ids(db) == []


def test_the_list_shows_each_tickets_counter_and_remembers_the_clerks(app, client, auth, db, token):
    ticket_at(app, db, "001", "3"), ticket_at(app, db, "002", ""), ticket_at(app, db, "003", "A3")
    auth.login("clerk")
    html = client.get("/console/tickets?site=Hall A&counter=A3",
                      headers={"Accept-Language": "en"}).get_data(as_text=True)
    rows = html.split("<tbody>")[1].split("</tbody>")[0].split("<tr ")[1:]
    shown = [re.search(r'class="ticket-counter">([^<]*)<', row).group(1) for row in rows]
    assert shown == ["Counter 3", "General service desk", "Counter A3"]
    assert ' mine"' in rows[2] and ' mine"' not in rows[0]                  # the clerk's own
    assert '<option value="A3" selected>' in html and 'id="waiting-mine">1<' in html
    header = html.split("<thead>")[1].split("</thead>")[0]
    assert header.count("<th>") == rows[0].count("<td") == 8                 # a header a column
    again = client.get("/console/tickets?site=Hall A", headers={"Accept-Language": "zh"}).get_data(as_text=True)
    assert '<option value="A3" selected>' in again                         # kept for the sign-in
    assert "3号窗口" in again and "综合服务窗口" in again and "A3号窗口" in again


@pytest.mark.parametrize("language, written", [("zh", r"\d{4}年\d{1,2}月\d{1,2}日"),
                                               ("en", r"\d{1,2} [A-Z][a-z]{2} \d{4}")])
def test_the_tickets_page_writes_dates_as_every_console_page_does(app, client, auth, db, token,
                                                                   language, written):
    from server.times import local_clock
    ticket_at(app, db, "001", "")
    auth.login("clerk")
    html = client.get("/console/tickets?site=Hall A", headers={"Accept-Language": language}).get_data(as_text=True)
    assert re.search(r'id="day">' + written + "<", html)
    with app.test_request_context(headers={"Accept-Language": language}):
        issued = local_clock("2026-12-01T01:00:00Z")
    # the page is about one day, named in its title: a ticket says only its time of day
    assert re.fullmatch(r"\d\d:\d\d:\d\d", issued) and f"<td>{issued}</td>" in html


def test_the_tickets_page_in_a_browser_puts_each_header_over_its_column(
        app, live_server, chromium_page, db, token):
    from browser import log_in, screenshot
    for number, counter in [("001", "3"), ("002", ""), ("003", "5"), ("004", "3"), ("005", "12")]:
        ticket_at(app, db, number, counter)
    db.execute("UPDATE sessions SET ticket_called_at = ?, ticket_called_by = 2 WHERE ticket_number = '001'",
               ["2026-12-01T01:05:00Z"])
    page = chromium_page
    log_in(page, live_server.url, "clerk")
    for language in ("zh", "en"):
        page.set_extra_http_headers({"Accept-Language": language})
        for width in (1440, 800):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(live_server.url + "/console/tickets?site=Hall A&counter=3")
            screenshot(page, f"tickets_{width}_{language}")
            columns = page.evaluate("""() => {
                const row = document.querySelector('#tickets tbody tr');
                return [...document.querySelectorAll('#tickets thead th')].map((th, i) => {
                    const td = row.cells[i], a = th.getBoundingClientRect(), b = td.getBoundingClientRect();
                    return [getComputedStyle(th).textAlign, getComputedStyle(td).textAlign, a.left, b.left,
                            a.width, b.width];
                });
            }""")
            assert len(columns) == 8
            # every column fits: nothing is cut off at the right, even at 800 px
            assert page.evaluate("() => { const t = document.querySelector('#tickets');"
                                 " return t.scrollWidth <= t.clientWidth + 1; }")
            for th_align, td_align, th_left, td_left, th_width, td_width in columns:
                assert th_align == td_align and abs(th_left - td_left) < 1 and abs(th_width - td_width) < 1
    page.click("#call-next-button")
    page.wait_for_selector(".flash-ok")
    assert "Calling ticket 004 to Counter 3." in page.inner_text(".flash-ok")
