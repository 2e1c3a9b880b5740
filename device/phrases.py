"""What the devices say and show after the greeting, in the citizen's language (zh, yue, en).

The blink request, the case file's next step, the queue ticket and the way to the desk for
visitors the device does not know. Plain functions of the case-file summary the server
returns (server/casefile.py), so the kiosk screen and the robot's voice say the same thing.
"""
from datetime import date, datetime

LANGUAGES = ("zh", "yue", "en")
FALLBACK = "zh"   # the hall's own language, for a visitor whose language is unknown

BLINK_REQUEST = {
    "zh": "请眨一下眼睛。",
    "yue": "請眨一下眼。",
    "en": "Please blink your eyes.",
}
BLINK_HINT = {             # under the blink request on the kiosk screen (with an English line)
    "zh": "请看着屏幕眨眨眼",
    "yue": "請望住屏幕眨眨眼",
    "en": "Look at the screen and blink",
}
SECOND_TRY = {
    "zh": "第二次机会",
    "yue": "第二次機會",
    "en": "Second try",
}
BLINK_AGAIN = {            # the second chance, before anyone is sent to the desk
    "zh": "再试一次：请看着屏幕，眨一下眼睛。",
    "yue": "再試一次：請望住屏幕，眨一下眼。",
    "en": "Let's try again: look at the screen and blink once.",
}
LOOK_AT_SCREEN = {         # live feedback: no eyes read just now
    "zh": "请看着屏幕",
    "yue": "請望住屏幕",
    "en": "Look at the screen",
}
BLINK_NOW = {              # live feedback: eyes found, a blink will be seen
    "zh": "已找到眼睛，请眨眼",
    "yue": "搵到你對眼，請眨眼",
    "en": "Eyes found: blink now",
}
LIVENESS_PASSED = {
    "zh": "已确认，正在打开您的业务档案。",
    "yue": "確認咗，而家打開你嘅業務檔案。",
    "en": "Thank you. Opening your case file.",
}
LIVENESS_FAILED = {
    "zh": "没有看到眨眼。请到服务台，工作人员会为您办理。",
    "yue": "睇唔到你眨眼。請去服務台，職員會幫你辦理。",
    "en": "I could not see a blink. Please go to the service desk; a clerk will help you.",
}
UNKNOWN_VISITOR = {       # the robot: the ticket follows at once, so no "go and take a number"
    "zh": "您好，欢迎光临。我为您取一个号，服务台的工作人员会叫号为您服务。",
    "yue": "你好，歡迎光臨。我幫你攞個籌，服務台職員會叫號幫你。",
    "en": "Welcome. I will give you a ticket number; a clerk at the service desk will call you.",
}
UNKNOWN_WITH_SCREEN = {   # the robot with a screen: the keypad is offered, the ticket follows anyway
    "zh": "您好，我没有认出您。您可以在我的屏幕上输入身份证号码；我也为您取一个号，工作人员会叫号为您服务。",
    "yue": "你好，我認唔到你。你可以喺我個屏幕輸入身份證號碼；我亦會幫你攞個籌，職員會叫號幫你。",
    "en": "Welcome. I did not recognise you. You can type your ID number on my screen; I will also "
          "give you a ticket number, and a clerk will call you.",
}
UNKNOWN_PROMPT = {        # the kiosk's spoken line for a visitor it does not know
    "zh": "请到柜台咨询工作人员",
    "yue": "請到櫃檯搵職員",
    "en": "Please see a clerk at the counter.",
}
ID_NUMBER_PROMPT = {      # the kiosk, to a visitor it does not know
    "zh": "没有认出您。请输入身份证号码，或凭号码到窗口办理。",
    "yue": "認唔到你。請輸入身份證號碼，或者憑籌號去窗口辦理。",
    "en": "We could not recognise you. Type your ID number, or take your ticket to the desk.",
}
TICKET_COUNTER = {        # under the ticket number: where to wait
    "zh": "请到{counter}号窗口",
    "yue": "請去{counter}號窗口",
    "en": "Counter {counter}",
}
TICKET_GENERAL = {
    "zh": "综合服务窗口",
    "yue": "綜合服務窗口",
    "en": "General service desk",
}
SEE_A_CLERK = {
    "zh": "暂时无法打开您的业务档案，请到服务台。",
    "yue": "暫時打唔開你嘅業務檔案，請去服務台。",
    "en": "Your case file cannot be opened now. Please go to the service desk.",
}
NO_OPEN_CASES = {
    "zh": "您目前没有在办的业务，请取号等候。",
    "yue": "你而家冇辦緊嘅業務，請攞籌等候。",
    "en": "You have no open cases. Please take a ticket.",
}
CASE_READY = {
    "zh": "您的{type}业务 {number} 已可以办理，请到{counter}号窗口。",
    "yue": "你嘅{type}業務 {number} 已經可以辦理，請去{counter}號窗口。",
    "en": "Your {type} case {number} is ready at counter {counter}.",
}
CASE_APPOINTMENT = {
    "zh": "您的{type}业务 {number} 预约在{time}，请到{counter}号窗口。",
    "yue": "你嘅{type}業務 {number} 預約喺{time}，請去{counter}號窗口。",
    "en": "Your {type} case {number} has an appointment at {time}, counter {counter}.",
}
APPOINTMENT_TODAY = {      # the citizen came for it: said first, with the time alone
    "zh": "您今天{time}的{type}预约（{number}），请到{counter}号窗口。",
    "yue": "你今日{time}嘅{type}預約（{number}），請去{counter}號窗口。",
    "en": "Your {time} appointment today ({type}, {number}): counter {counter}.",
}
CASE_OTHER = {
    "zh": "您的{type}业务 {number} {status}，请取号等候。",
    "yue": "你嘅{type}業務 {number} {status}，請攞籌等候。",
    "en": "Your {type} case {number} is {status}. Please take a ticket.",
}
TICKET = {
    "zh": "您的排队号码是{number}号。",
    "yue": "你嘅籌號係{number}號。",
    "en": "Your ticket number is {number}.",
}
STATUS = {
    "open": {"zh": "已受理", "yue": "已經受理", "en": "received"},
    "in_progress": {"zh": "正在办理", "yue": "辦緊", "en": "in progress"},
    "waiting_documents": {"zh": "还需要补充材料", "yue": "仲要補交文件", "en": "waiting for documents"},
    "ready": {"zh": "已可以办理", "yue": "已經可以辦理", "en": "ready"},
}


def language_of(language):
    return language if language in LANGUAGES else FALLBACK


def phrase(table, language, **fields):
    """The table's sentence in language (the hall's language when there is none)."""
    return table[language_of(language)].format(**fields)


def blink_request(language):
    return phrase(BLINK_REQUEST, language)


def ticket_text(number, language):
    """The ticket as said aloud: "007" is said "7", as a person would."""
    spoken = str(int(number)) if str(number).isdigit() else str(number)
    return phrase(TICKET, language, number=spoken)


def ticket_where(counter, language):
    """Where a ticket holder waits: their counter, or the general service desk."""
    if counter:
        return phrase(TICKET_COUNTER, language, counter=counter)
    return phrase(TICKET_GENERAL, language)


def todays_appointment(cases, today=None):
    """The earliest case booked for today at a counter, or None."""
    day = (today or date.today()).isoformat()
    booked = [c for c in cases if (c.get("appointment_at") or "")[:10] == day and c.get("counter")]
    return min(booked, key=lambda c: c["appointment_at"]) if booked else None


def main_case(cases):
    """The case to tell the citizen about first: one ready at a counter, then the earliest
    appointment, then the first listed; None when nothing is open."""
    if not cases:
        return None
    ready = [c for c in cases if c["status"] == "ready" and c["counter"]]
    if ready:
        return ready[0]
    booked = sorted((c for c in cases if c["appointment_at"]), key=lambda c: c["appointment_at"])
    return booked[0] if booked else cases[0]


def next_step(cases, language, today=None):
    """The next step from a citizen-safe case-file summary, one sentence: today's appointment
    first (the citizen came for it), else the case that matters most."""
    booked = todays_appointment(cases, today)
    if booked is not None:
        return phrase(APPOINTMENT_TODAY, language, type=booked["type"], number=booked["case_number"],
                      counter=booked["counter"], time=booked["appointment_at"][11:16])
    case = main_case(cases)
    if case is None:
        return phrase(NO_OPEN_CASES, language)
    fields = {"type": case["type"], "number": case["case_number"], "counter": case["counter"],
              "time": when_text(case["appointment_at"], language, today)}
    if case["status"] == "ready" and case["counter"]:
        return phrase(CASE_READY, language, **fields)
    if case["appointment_at"] and case["counter"]:
        return phrase(CASE_APPOINTMENT, language, **fields)
    status = STATUS.get(case["status"], {}).get(language_of(language), case["status"])
    return phrase(CASE_OTHER, language, status=status, **fields)


MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")


TODAY = {"zh": "今天", "yue": "今日", "en": "Today"}


def when_text(stamp, language, today=None):
    """An appointment's local time as people of that language write and say it, as short as
    it can be: "今天 09:30", "3月2日 09:30", "2027年3月2日 09:30" (zh, yue); "Today 09:30",
    "2 March, 09:30", "2 March 2027, 09:30" (en). espeak reads these as a date and a time;
    "2026-03-02" it would spell out digit by digit."""
    try:
        moment = datetime.strptime((stamp or "")[:16].replace(" ", "T"), "%Y-%m-%dT%H:%M")
    except ValueError:
        return (stamp or "").replace("T", " ")[:16]     # not a date: shown as given
    today, language, clock = today or date.today(), language_of(language), moment.strftime("%H:%M")
    if moment.date() == today:
        return f"{TODAY[language]} {clock}"
    year = moment.year != today.year
    if language == "en":
        return f"{moment.day} {MONTHS[moment.month - 1]}{f' {moment.year}' if year else ''}, {clock}"
    return f"{f'{moment.year}年' if year else ''}{moment.month}月{moment.day}日 {clock}"


def with_when(cases, language, today=None):
    """The cases of a summary, each with "when": its appointment in the citizen's language."""
    return [dict(c, when=when_text(c["appointment_at"], language, today) if c.get("appointment_at") else "")
            for c in cases]
