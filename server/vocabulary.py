"""The fixed words of case files: statuses and counters, as the import and the console read them.

A plain module (no Flask) so the importer, the console and the admin pages share one list.

Status: one of CASE_STATUSES. A CASES.csv may spell them as people do, in English or Chinese
(STATUS_SPELLINGS, documented in the README); anything else is refused with the vocabulary,
never stored as a new status ("pending" was once accepted and no page knew what it meant).

Counter: the counter (window) a citizen is sent to, stored as its code: digits ("11") or a
short code of letters and digits ("A3"). The speech templates say "请到{counter}号窗口", so a
counter written "11号窗口", "第11号窗口", "11号", "窗口11" or "counter 11" is stored as "11",
never said "11号窗口号窗口"; free text that is not a counter code is refused.
"""
import re
import unicodedata

CASE_STATUSES = ("open", "in_progress", "waiting_documents", "ready", "closed")
# A citizen's language: what devices speak to them (Mandarin, Cantonese, English).
LANGUAGES = ("zh", "yue", "en")

# Other spellings accepted in CASES.csv (compared in lower case, spaces and dashes as "_").
STATUS_SPELLINGS = {
    "open": ("new", "opened", "received", "已受理", "受理", "新建", "待办理", "待处理", "未办理"),
    "in_progress": ("processing", "in_process", "办理中", "正在办理", "处理中"),
    "waiting_documents": ("waiting_for_documents", "documents_needed", "待补材料", "待补充材料",
                          "补充材料", "需补材料", "还需要补充材料"),
    "ready": ("可办理", "已可以办理", "待领取", "可领取"),
    "closed": ("done", "finished", "已办结", "办结", "已完成", "已结案", "结案"),
}
_STATUS_OF = {spelling: status for status, spellings in STATUS_SPELLINGS.items()
              for spelling in (status, *spellings)}

MAX_COUNTER = 8
_COUNTER_CODE = re.compile(r"[0-9A-Z]{1,%d}" % MAX_COUNTER)
# What people write around the code: 第11号窗口, 11号, 窗口11, counter 11, window 11, No. 11
_COUNTER_WORDS = re.compile(r"^(第|窗口|counter|window|no\.?|#)|(号窗口|號窗口|号|號|窗口|窗)$",
                            re.IGNORECASE)


def spelling_key(value):
    """How a word from a spreadsheet is compared: NFKC (full-width letters), case folded,
    spaces and dashes as "_" ("In Progress", "in-progress", "ＩＤ Number")."""
    return re.sub(r"[\s\-]+", "_", unicodedata.normalize("NFKC", value).strip().lower())


def parse_status(value):
    """The stored status for a spelling in a CSV or form, or ValueError listing the vocabulary."""
    key = spelling_key(value)
    if key in _STATUS_OF:
        return _STATUS_OF[key]
    raise ValueError(f"status {value!r} is not one of {', '.join(CASE_STATUSES)}"
                     " (or a spelling listed in the README)")


def normalise_counter(value):
    """The counter code to store ("" for none): "11号窗口" -> "11", "a3" -> "A3"; else ValueError."""
    text = unicodedata.normalize("NFKC", value).strip()
    previous = None
    while text != previous:  # "第11号窗口": strip the words on both sides, however many
        previous, text = text, _COUNTER_WORDS.sub("", text).strip()
    code = text.upper()
    if value.strip() and not _COUNTER_CODE.fullmatch(code):
        raise ValueError(f"counter {value!r} must be a counter number like 11 (also written"
                         f" 11号窗口) or a code of up to {MAX_COUNTER} letters and digits like A3")
    return code.lstrip("0") or code if code.isdigit() else code
