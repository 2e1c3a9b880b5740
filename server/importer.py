"""Bulk import of citizen records, their photos and their case files.

A plain library module (no Flask): the `import-records` command and the admin upload page
are thin layers over run_import(). The flow, per file:

  read CSV (UTF-8 with or without BOM, else GBK) -> validate rows -> read each photo (folder
  or zip) -> skip what is unchanged (content hashes, before any decoding) -> quality gate and
  encoding in worker processes -> duplicate-identity check -> write in batch transactions.

Every row ends with one outcome (imported, updated, unchanged, rejected, flagged) and, when
it was not imported as is, a reason a person understands. Only a file that cannot be read at
all (missing, not a CSV we can decode, required columns missing) stops the whole import:
ImportFailed. A process that dies mid-way leaves whole batches, never half a citizen.
"""
import contextlib
import csv
import functools
import hashlib
import io
import lzma
import multiprocessing
import os
import posixpath
import re
import threading
import unicodedata
import zipfile
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from db import now_iso, transaction
from db.queries import new_citizen_key, next_sync_seq
from recognition import PhotoRejected, models
from recognition.images import MAX_BYTES

from . import audit, calibration, disk, duplicates, faceindex, faces, files
from .audit import Actor
from .files import write_whole
from .i18n import N_
from .privacy import mask
from .vocabulary import LANGUAGES, normalise_counter, parse_status, spelling_key

RECORD_COLUMNS = ("id_number", "name", "phone", "photo")
RECORD_OPTIONAL = ("language", "district", "consent")
CASE_COLUMNS = ("case_number", "id_number", "type", "status", "summary")
CASE_OPTIONAL = ("counter", "appointment_at")
OUTCOMES = ("imported", "updated", "unchanged", "rejected", "flagged")
REPORT_COLUMNS = ("file", "line", "id_number", "name", "outcome", "reason")
# Headers a Chinese bureau's own export uses (and "ID number" for id_number): matched after
# NFKC and case folding. The English names stay the documented format; these only read it.
HEADER_ALIASES = {
    "身份证号": "id_number", "身份证号码": "id_number", "公民身份号码": "id_number",
    "证件号码": "id_number", "证件号": "id_number", "姓名": "name", "手机号": "phone",
    "手机号码": "phone", "手机": "phone", "联系电话": "phone", "电话": "phone", "照片": "photo",
    "照片文件": "photo", "照片文件名": "photo", "语言": "language", "区县": "district",
    "辖区": "district", "所属区县": "district", "同意": "consent", "是否同意": "consent",
    "同意采集人脸": "consent", "案件编号": "case_number", "案件号": "case_number",
    "业务类型": "type", "案件类型": "type", "类型": "type", "状态": "status", "案件状态": "status",
    "摘要": "summary", "事项摘要": "summary", "窗口": "counter", "窗口号": "counter",
    "预约时间": "appointment_at",
}
BATCH_SIZE = 50
BATCH_BYTES = 128 * 1024 * 1024   # photo bytes a batch holds at most (see Importer._batches)
MAX_CSV_BYTES = 100 * 1024 * 1024
MAX_FIELD = 500  # longer cells are a wrong column or pasted junk, not a name or a summary
# The duplicate-identity check has its own, looser threshold (server/duplicates.py): a face
# that might be another citizen's is held for an admin's look (/admin/duplicates/).
_PRC_WEIGHTS = [2 ** (17 - i) % 11 for i in range(17)]
_PRC_CHECK = "10X98765432"
_YES = {"yes", "y", "true", "1", "是"}
_NO = {"no", "n", "false", "0", "否"}


class ImportFailed(Exception):
    """The import could not run at all (missing file, unreadable CSV, missing columns)."""


class RowInvalid(ValueError):
    """One CSV row that cannot be imported; `reason` is shown to the admin."""

    def __init__(self, line, reason):
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


@dataclass
class RowResult:
    file: str
    line: int
    id_number: str
    name: str
    outcome: str
    reason: str = ""


@dataclass
class ImportResult:
    rows: list = field(default_factory=list)
    encoded: int = 0  # photos that went through the quality gate and encoder in this run

    def count(self, outcome):
        return sum(1 for r in self.rows if r.outcome == outcome)

    def counts(self, file=None):
        """Outcome -> number of rows; a flagged row also counts as rejected (it was not accepted)."""
        rows = [r for r in self.rows if file is None or r.file == file]
        counts = {o: sum(1 for r in rows if r.outcome == o) for o in OUTCOMES}
        counts["rejected"] += counts["flagged"]
        return counts

    def summary_line(self):
        c = self.counts("records")
        return (f"imported {c['imported']}, updated {c['updated']}, "
                f"unchanged {c['unchanged']}, rejected {c['rejected']}")

    def problems(self):
        return [r for r in self.rows if r.outcome in ("rejected", "flagged")]


@dataclass(frozen=True)
class Settings:
    """What the import needs from the app's configuration."""
    photos_dir: str
    id_number_rule: str = "prc18"
    workers: int = 1
    batch_size: int = BATCH_SIZE
    index_dir: str = None            # where the 1:N index is kept (None: built in memory)

    @classmethod
    def from_config(cls, config):
        return cls(photos_dir=config["PHOTOS_DIR"],
                   id_number_rule=config.get("ID_NUMBER_RULE", "prc18"),
                   workers=max(1, int(config.get("IMPORT_WORKERS") or 1)),
                   index_dir=config.get("FACEINDEX_DIR"))


@dataclass
class Record:
    line: int
    id_number: str
    name: str
    phone: str
    language: str
    district: str
    consent: bool
    photo: str

    def row_sha256(self, photo_sha256):
        """Hash of everything stored from this row: equal hash, nothing to write."""
        parts = [self.id_number, self.name, self.phone, self.language, self.district,
                 "1" if self.consent else "0", photo_sha256 or ""]
        return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


@dataclass
class Case:
    line: int
    case_number: str
    id_number: str
    type: str
    status: str
    summary: str
    counter: str
    appointment_at: str


# --- reading CSV files ----------------------------------------------------------------------

def decode_csv(data, label):
    """Text of a CSV file: UTF-8 (with or without BOM), else GBK/GB18030, decided for the whole
    file; UTF-16 with a BOM too (Excel's "Unicode text" export)."""
    if data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")):
        # .xlsx is a zip, .xls an OLE2 file: read as text they failed as "encoding not recognised"
        raise ImportFailed(f"{label}: is an Excel or WPS workbook, not a CSV file; save it as"
                           f" \"CSV UTF-8\" and import that")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ImportFailed(f"{label}: starts as UTF-16 but is not valid UTF-16")
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8")
        except UnicodeDecodeError:
            raise ImportFailed(f"{label}: starts as UTF-8 but is not valid UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    _refuse_mixed_encodings(data, label)
    try:
        # GB18030 is the superset of GBK that Chinese spreadsheet programs actually write.
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise ImportFailed(f"{label}: text encoding not recognised (save it as UTF-8 or GBK)")


def _refuse_mixed_encodings(data, label):
    """ImportFailed when a file that is not UTF-8 as a whole has lines that are UTF-8 Chinese.

    A UTF-8 file with one row pasted in from a GBK file used to be read whole as GB18030:
    every UTF-8 name became mojibake, and a re-import overwrote the good names with it.
    Neither reading is right for the whole file, so a person must save it again.
    """
    first = {}
    # b"\n" never occurs inside a UTF-8 or GBK character, so lines split safely as bytes
    for number, line in enumerate(data.split(b"\n"), 1):
        first.setdefault(_line_encoding(line), number)
        if "utf-8" in first and "other" in first:
            raise ImportFailed(f"{label}: mixes text encodings (line {first['utf-8']} is UTF-8,"
                               f" line {first['other']} is not); save the whole file as UTF-8")


def _line_encoding(line):
    """What one line says about the file's encoding: "utf-8" for UTF-8 Chinese that cannot
    be ordinary GBK, "other" for a line that is not UTF-8 at all, None for ASCII or a line
    that could be either.

    GBK bytes are now and then valid UTF-8 by chance (mostly two-byte sequences, which read as
    Greek, Cyrillic or Arabic letters). So "utf-8" needs a three-byte character (how UTF-8
    writes every Chinese character), nothing in U+0080..U+009F or U+0100..U+1FFF, and a
    GB18030 reading that is not plain GB2312 text. Lines of GB2312 characters never pass;
    rare GBK-only characters very seldom do, and then the file is refused, never misread.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "other"
    wide = [ord(ch) for ch in text if ord(ch) >= 0x80]
    if not any(code >= 0x800 for code in wide) \
            or any(code < 0xA0 or 0x100 <= code < 0x2000 for code in wide):
        return None
    try:
        line.decode("gb18030").encode("gb2312")
    except UnicodeError:
        return "utf-8"
    return None


def read_csv(path, required, optional, label):
    """[(line, {column: value})] of a CSV file; header names matched case-insensitively.

    Raises ImportFailed when the file is missing, unreadable or lacks a required column.
    Line numbers are file lines (the header is line 1), so an admin can find the row.
    """
    text = decode_csv(_read_file(path, label), label)
    delimiter, skip_first = csv_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        if skip_first:
            next(reader, None)
        header = next(reader, None)
        if not header:
            raise ImportFailed(f"{label}: the file is empty")
        columns = [column_name(h) for h in header]
        missing = [c for c in required if c not in columns]
        if missing:
            raise ImportFailed(f"{label}: missing column(s) {', '.join(missing)}"
                               f" (expected {','.join(required)})")
        wanted = set(required) | set(optional)
        # Two headers for one field (联系电话 and 手机号码 both a phone): taking either would
        # store a landline as the number the kiosk's second factor checks, so neither is taken.
        clash = next((c for c in required + optional if columns.count(c) > 1), None)
        if clash:
            both = ", ".join(h.strip() for h, c in zip(header, columns) if c == clash)
            raise ImportFailed(f"{label}: columns {both} all name {clash}; keep one of them")
        index = {c: i for i, c in reversed(list(enumerate(columns))) if c in wanted}
        return list(_rows(reader, index))
    except csv.Error as e:
        raise ImportFailed(f"{label}: not a readable CSV file ({e})")


def column_name(header):
    """The column a header cell names: "ID Number", "id_number" and "身份证号" all name
    id_number (HEADER_ALIASES); anything else is kept, lower-cased, and ignored."""
    name = spelling_key(header)
    return HEADER_ALIASES.get(name, name)


def csv_delimiter(text):
    """(delimiter, skip_first_line): commas, or what the header line uses instead. Excel
    writes semicolons where the decimal mark is a comma, tabs for "Unicode text", and may
    start with a "sep=;" line naming it."""
    first = text.split("\n", 1)[0].strip("\r")
    if first.lower().startswith("sep=") and len(first) >= 5:
        return first[4], True
    counts = {d: first.count(d) for d in (",", "\t", ";")}
    best = max(counts, key=counts.get)
    return (best if counts[best] else ","), False


def _read_file(path, label):
    try:
        if os.path.getsize(path) > MAX_CSV_BYTES:
            raise ImportFailed(f"{label}: file is larger than {MAX_CSV_BYTES // 2**20} MB")
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ImportFailed(f"{label}: file not found: {path}")
    except IsADirectoryError:
        raise ImportFailed(f"{label}: is a folder, not a CSV file: {path}")
    except OSError as e:
        raise ImportFailed(f"{label}: cannot read {path} ({e.strerror})")


def _rows(reader, index):
    line = reader.line_num + 1
    for cells in reader:
        if any(c.strip() for c in cells):
            yield line, {c: (cells[i].strip() if i < len(cells) else "") for c, i in index.items()}
        line = reader.line_num + 1  # a quoted cell may span lines


# --- validating rows ------------------------------------------------------------------------

def prc_check_digit(first17):
    """The ISO 7064 MOD 11-2 check character of a PRC resident ID's first 17 digits."""
    return _PRC_CHECK[sum(int(d) * w for d, w in zip(first17, _PRC_WEIGHTS)) % 11]


def normalise_id_number(value, rule="prc18"):
    """The ID number in stored form (upper case), or ValueError with the reason.

    rule "prc18": 18-character PRC resident ID with a valid check character.
    rule "any": 1 to 32 letters and digits (other countries' documents, test sites).
    """
    # NFKC and [0-9], not \d: a full-width "４４０１...X" (typed with a Chinese input method)
    # passed \d and was stored as a second citizen beside the ASCII "4401...X".
    value = unicodedata.normalize("NFKC", value).strip().replace(" ", "").upper()
    if not value:
        raise ValueError(N_("ID number is empty"))
    if rule == "any":
        if not re.fullmatch(r"[0-9A-Z]{1,32}", value):
            raise ValueError(N_("ID number must be 1 to 32 letters and digits"))
        return value
    if re.fullmatch(r"\d(\.\d+)?E\+\d+", value):
        raise ValueError(f"ID number {value} was turned into a number by a spreadsheet;"
                         " format the column as text and export again")
    if not re.fullmatch(r"[0-9]{17}[0-9X]", value):
        raise ValueError(f"ID number {value} is not an 18-character resident ID number")
    expected = prc_check_digit(value[:17])
    if value[17] != expected:
        raise ValueError(f"ID number {value} has a wrong check digit"
                         f" (last character should be {expected}); check for a typing error")
    return value


def normalise_phone(value):
    """Digits with a leading + kept; spaces, dashes, dots and parentheses dropped. '' stays ''.

    Loose on purpose: landlines, mobiles, +86 and Hong Kong/Macau numbers all occur.
    """
    # NFKC and [0-9], as for ID numbers: a full-width phone was stored as typed, and its last
    # four digits never matched what a citizen types on the kiosk's keypad.
    text = unicodedata.normalize("NFKC", value).strip()
    if re.fullmatch(r"\+?[0-9]+\.0", text):
        # a number column exported by Excel: 13800138000.0 lost its dot and gained a digit
        text = text[:-2]
    compact = re.sub(r"[\s\-().]", "", text)
    if not compact:
        return ""
    if not re.fullmatch(r"\+?[0-9]+", compact):
        raise ValueError(f"phone {value!r} may contain only digits, spaces, dashes,"
                         " parentheses and a leading +")
    digits = compact.lstrip("+")
    if not 6 <= len(digits) <= 15:
        raise ValueError(f"phone {value!r} must have 6 to 15 digits")
    return compact


def parse_consent(value):
    value = value.strip().lower()
    if not value or value in _YES:
        return True
    if value in _NO:
        return False
    raise ValueError(f"consent must be yes or no, not {value!r}")


def parse_record(line, cells, rule):
    """A validated Record from one RECORDS.csv row, or RowInvalid."""
    try:
        id_number = normalise_id_number(cells["id_number"], rule)
        name = " ".join(cells["name"].split())
        if not name:
            raise ValueError(N_("name is empty"))
        language = (cells.get("language") or "zh").lower()
        if language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")
        consent = parse_consent(cells.get("consent", ""))
        if consent and not cells["photo"]:
            raise ValueError(N_("photo is empty (needed unless consent is no)"))
        _check_lengths(cells)
        return Record(line, id_number, name, normalise_phone(cells["phone"]), language,
                      cells.get("district", ""), consent, cells["photo"])
    except ValueError as e:
        raise RowInvalid(line, str(e))


def parse_case(line, cells, rule):
    """A validated Case from one CASES.csv row, or RowInvalid."""
    try:
        case_number = cells["case_number"]
        if not case_number:
            raise ValueError(N_("case number is empty"))
        id_number = normalise_id_number(cells["id_number"], rule)
        for column in ("type", "status"):
            if not cells[column]:
                raise ValueError(f"{column} is empty")
        _check_lengths(cells)
        return Case(line, case_number, id_number, cells["type"], parse_status(cells["status"]),
                    cells["summary"], normalise_counter(cells.get("counter", "")),
                    _appointment(cells.get("appointment_at", "")))
    except ValueError as e:
        raise RowInvalid(line, str(e))


def _appointment(value):
    """The appointment as the hall's local time, "YYYY-MM-DDTHH:MM", or ValueError.

    A time zone is refused rather than converted: devices and the ticket queue read the
    stored text as local time, and 02:30Z was kept as it was written (an 8-hour error).
    """
    if not value:
        return ""
    try:
        moment = _date_time(value)
    except ValueError:
        raise ValueError(f"appointment_at {value!r} is not a date and time like 2025-03-01 09:30")
    if moment.tzinfo is not None:
        raise ValueError(f"appointment_at {value!r} has a time zone; write the hall's local time,"
                         " like 2025-03-01 09:30")
    return moment.isoformat(timespec="minutes")


# Excel's Chinese default writes 2026/12/1 9:30: no leading zeros, which ISO 8601 requires.
_SPREADSHEET_TIME = re.compile(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})"
                               r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")


def _date_time(value):
    match = _SPREADSHEET_TIME.fullmatch(value)
    if match:
        return datetime(*(int(part) for part in match.groups() if part is not None))
    return datetime.fromisoformat(value.replace("/", "-"))


def _check_lengths(cells):
    for column, value in cells.items():
        if len(value) > MAX_FIELD:
            raise ValueError(f"{column} is longer than {MAX_FIELD} characters")
        if any(unicodedata.category(ch) == "Cc" for ch in value):
            # NUL, escape codes, stray tabs: a broken export, never part of a name or number
            raise ValueError(f"{column} contains a control character; check the export")


# --- photos: a folder or a zip --------------------------------------------------------------

class PhotoMissing(LookupError):
    pass


def unsafe_name(name):
    """True for a path that could point outside the photo folder: absolute, drive or '..'."""
    name = name.replace("\\", "/")
    return (name.startswith("/") or re.match(r"^[A-Za-z]:", name) is not None
            or ".." in name.split("/"))


def photo_key(name):
    """A photo name as people mean it: a spreadsheet typed on Windows ignores case and writes
    backslashes; a Mac stores é and 민 decomposed (NFD) where the spreadsheet has them
    composed. Each was "photo file ... not found" though the file was there."""
    return unicodedata.normalize("NFC", name.replace("\\", "/")).casefold()


def _one_of(candidates, name):
    """The single name spelt like `name`, or None; PhotoRejected when several are."""
    if len(candidates) > 1:
        raise PhotoRejected(f"photo {name} is ambiguous: {', '.join(sorted(candidates))}")
    return candidates[0] if candidates else None


class FolderPhotos:
    """Photos in a folder; names from the CSV never reach outside it."""

    def __init__(self, folder):
        self.folder = os.path.realpath(folder)
        self._listings = {}     # folder -> {photo_key: [names]}, read once when a name misses

    def read(self, name):
        name = name.replace("\\", "/")
        if unsafe_name(name):
            raise PhotoRejected(f"photo name {name!r} refused: absolute paths and '..' are not allowed")
        path = self._find(name)
        if os.path.getsize(path) > MAX_BYTES:
            raise PhotoRejected(f"file is larger than {MAX_BYTES // 2**20} MB")
        with open(path, "rb") as f:
            return f.read()

    def _find(self, name):
        path = os.path.realpath(os.path.join(self.folder, name))
        if not os.path.isfile(path):
            parent = os.path.dirname(path)
            if parent == self.folder or parent.startswith(self.folder + os.sep):
                if parent not in self._listings:
                    self._listings[parent] = {}
                    with contextlib.suppress(OSError):      # no such folder, or not ours to read
                        for entry in os.listdir(parent):
                            self._listings[parent].setdefault(photo_key(entry), []).append(entry)
                found = _one_of(self._listings[parent].get(photo_key(os.path.basename(path)), []),
                                name)
                path = os.path.realpath(os.path.join(parent, found)) if found else path
        if not path.startswith(self.folder + os.sep) or not os.path.isfile(path):
            raise PhotoMissing(f"photo file {name} not found")
        return path

    def close(self):
        pass


class ZipPhotos:
    """Photos in a zip, read into memory one at a time, never extracted to disk.

    Entries with absolute paths or '..' are refused (a row naming one gets that reason).
    A row may name an entry by its full path or, when unambiguous, by its file name alone
    (zips made by compressing a folder put everything under that folder's name).
    """

    def __init__(self, path):
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise ImportFailed(f"photos: not a readable zip file: {path} ({e})")
        self.safe, self.unsafe, self.by_base = {}, {}, {}   # by_base: photo_key(file name)
        for info in self.zip.infolist():
            if info.is_dir():
                continue
            for name in zip_entry_names(info):
                name = name.replace("\\", "/")
                target = self.unsafe if unsafe_name(name) else self.safe
                target[name] = info
                self.by_base.setdefault(photo_key(posixpath.basename(name)), []).append(name)

    def read(self, name):
        name = name.replace("\\", "/")
        if unsafe_name(name):
            raise PhotoRejected(f"photo name {name!r} refused: absolute paths and '..' are not allowed")
        entry = self._entry(name)
        if entry in self.unsafe:
            raise PhotoRejected(f"zip entry {entry!r} refused: absolute paths and '..' are not allowed")
        info = self.safe[entry]
        if info.file_size > MAX_BYTES:
            raise PhotoRejected(f"file is larger than {MAX_BYTES // 2**20} MB")
        try:
            with self.zip.open(info) as f:
                data = f.read(MAX_BYTES + 1)  # the header's size may lie: cap what is inflated
        # zlib.error and LZMAError are what a corrupt deflate or LZMA member raises; uncaught,
        # one damaged photo stopped the whole import half-way (a traceback on the command line).
        except (zipfile.BadZipFile, RuntimeError, OSError, EOFError, zlib.error, lzma.LZMAError) as e:
            raise PhotoRejected(f"zip entry {entry} cannot be read ({e})")
        if len(data) > MAX_BYTES:
            raise PhotoRejected(f"file is larger than {MAX_BYTES // 2**20} MB")
        return data

    def _entry(self, name):
        """The entry a row names: by its path, or by the end of its path (a zip made by
        compressing a folder puts everything under that folder's name), spelt as people do
        (photo_key). Never one in another folder: branchA/001.jpg is not branchB/001.jpg."""
        if name in self.safe:
            return name
        want = photo_key(name)
        found = _one_of([entry for entry in self.by_base.get(photo_key(posixpath.basename(name)), [])
                         if photo_key(entry) == want or photo_key(entry).endswith("/" + want)], name)
        if found is None:
            raise PhotoMissing(f"photo file {name} not found")
        return found

    def close(self):
        self.zip.close()


def zip_entry_names(info):
    """The names an entry may have been given, most likely first. With the UTF-8 flag (bit
    11) it has one. Without it the bytes are ambiguous: Chinese Windows (Explorer, older
    WinRAR) writes GBK, macOS' Archive Utility and Java tools write UTF-8, old tools cp437;
    and the bytes cannot always tell (郑伟 in GBK is valid UTF-8, cp437's Müller is valid
    GBK). So the entry answers to every reading its bytes allow, and the records' photo
    column picks: read as cp437 alone, 照片/张三.jpg was never found; read as GBK alone, a
    Mac's UTF-8 names and cp437's Müller.jpg were not."""
    if info.flag_bits & 0x800:
        return [info.filename]
    raw = info.filename.encode("cp437")     # zipfile read the bytes as cp437: undo it
    names = []
    for codec in ("utf-8", "gbk", "cp437"):
        try:
            name = raw.decode(codec)
        except UnicodeError:
            continue
        if name not in names:
            names.append(name)
    return names


def open_photos(path):
    """FolderPhotos or ZipPhotos for a folder or zip path, or ImportFailed."""
    if not path or not os.path.exists(path):
        raise ImportFailed(f"photos: folder or zip not found: {path}")
    if os.path.isdir(path):
        return FolderPhotos(path)
    return ZipPhotos(path)


# --- the quality gate and encoder, run in worker processes -----------------------------------

def encode_photo(data, model_name):
    """(template bytes, image format, None) for an acceptable photo, or (None, None, reason):
    the quality gate, then the face model named (the registry's active one).

    Runs in a worker process: takes and returns plain bytes so nothing big is pickled twice.
    """
    from recognition import images, quality
    model = models.get(model_name)
    try:
        rgb = images.load_image(data)
        enrolment = quality.enrolment_template(rgb, model)
    except PhotoRejected as e:
        return None, None, e.reason
    return model.to_blob(enrolment.encoding), image_format(data), None


def image_format(data):
    """File extension for stored photo bytes, from their magic number: a format browsers
    show, or "img" for one they do not (TIFF, JPEG 2000), which is stored as a JPEG copy."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:4] in (b"RIFF",) and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:2] == b"BM":
        return "bmp"
    if data[4:12] in (b"ftypavif", b"ftypavis"):
        return "avif"
    return "img"


def browser_copy(data):
    """A JPEG of a photo browsers cannot show (a scanner's TIFF, a JPEG 2000): the admin's
    and the clerk's pages, and the duplicate review, showed a broken image for it."""
    from PIL import Image
    from recognition import images
    out = io.BytesIO()
    Image.fromarray(images.load_image(data)).save(out, "JPEG", quality=92)
    return out.getvalue()


def _warm_worker(model_name):
    _die_with_parent()
    from recognition import engine
    engine.warm_up()
    models.get(model_name).warm_up()


def _die_with_parent():
    """A worker whose server process is killed gets SIGTERM instead of staying behind
    (Linux's parent-death signal); elsewhere the pool's own shutdown is all there is."""
    try:
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:   # the parent died before the signal was set up
        os._exit(1)


class Encoder:
    """Runs encode_photo on `workers` processes (in this process when workers is 1).

    Worker processes are spawned, not forked: the web server imports the import from a
    thread, and forking a threaded process can copy a held lock into the child.
    """

    def __init__(self, workers, model):
        self.workers = workers
        self.pool = None
        self.encode = functools.partial(encode_photo, model_name=model.name)
        if workers > 1:
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_warm_worker, initargs=(model.name,))

    def map(self, photos):
        if self.pool is None:
            return map(self.encode, photos)
        return self.pool.map(self.encode, photos)

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- the import -----------------------------------------------------------------------------

@dataclass
class _Pending:
    """A valid record on its way to the database, with what its photo turned out to be."""
    record: Record
    existing: object = None          # the citizens row, or None for a new citizen
    photo: bytes = None
    photo_sha256: str = None
    row_sha256: str = None
    template: bytes = None           # a new template to store (None: keep or none)
    image_format: str = None
    reason: str = None               # set when the photo was refused


def run_import(db, records_path, photos_path, cases_path=None, settings=None, actor=Actor(),
               progress=None):
    """Import RECORDS.csv (+ photos folder or zip, + optional CASES.csv) into db.

    Returns an ImportResult with one RowResult per data row. Raises ImportFailed, before
    anything is written, when a file cannot be read at all. progress(processed, total) is
    called as rows are done, outside any transaction.
    """
    settings = settings or Settings(photos_dir=".")
    record_rows = read_csv(records_path, RECORD_COLUMNS, RECORD_OPTIONAL, "records")
    case_rows = read_csv(cases_path, CASE_COLUMNS, CASE_OPTIONAL, "cases") if cases_path else []
    photos = open_photos(photos_path)
    with _importing(settings.index_dir):    # the one-citizen pages refuse at once meanwhile
        run = _Run(db, settings, actor, progress, len(record_rows) + len(case_rows))
        ok = False
        try:
            run.progress(0, run.total)  # the page shows the job's size before the first photo
            run.records(record_rows, photos)
            run.cases(case_rows)
            ok = True
        finally:
            photos.close()
            run.release_index(ok)
    run.result.rows.sort(key=lambda r: (r.file != "records", r.line))
    with transaction(db):
        audit.record(db, actor, "import.run", "import", "",
                     {"records": os.path.basename(records_path),
                      "cases": os.path.basename(cases_path) if cases_path else "",
                      **run.result.counts("records"), "cases_counts": run.result.counts("cases")})
    with transaction(db):     # new faces move the registry's false-match curve
        calibration.current_report(db)
    return run.result


def stopped_message(error, config):
    """What the CLI and a web job say when an import stopped on a full disk or a file error:
    the batch being written was undone, earlier ones are kept, the same import runs again."""
    if disk.is_full(error):
        reason = getattr(error, "strerror", None) or "no space left"
        what = f"the disk is full ({reason}, {disk.folder_of(error, config)} folder)"
    else:
        what = f"{error.strerror or error} ({error.filename or 'while writing'})"
    return (f"import stopped: {what}; the batch being written was undone, earlier batches are"
            " kept: run the same import again once fixed")


class _Run:
    """The state of one import: the result so far, the gallery for duplicate checks, progress."""

    def __init__(self, db, settings, actor, progress, total):
        self.db, self.settings, self.actor = db, settings, actor
        self.progress = progress or (lambda processed, total: None)
        self.total, self.processed = total, 0
        self.result = ImportResult()
        # The registry's model when the import starts; a template written after a switch to
        # another one is refused (faces.ModelChanged) and the batch undone.
        self.model = faces.active(db)
        self.gallery = load_gallery(db, settings.index_dir)  # last: held until release_index
        # The fraud check's own threshold (recall over precision): server/duplicates.py. The
        # curve it is read from is the registry's as the batch began (_start_batch); the
        # threshold follows the gallery's size as the batch adds faces: {size: threshold}.
        self.curve, self.thresholds = None, {}
        self.replaced_photos = set()  # photo files the current batch stopped using
        self.saved_photos = set()     # photo files the current batch created
        self.swept = False            # the photos folder's unfinished writes removed

    def release_index(self, ok):
        """Keep the index, with this import's templates, for the next import (or drop it)."""
        if self.settings.index_dir:
            faceindex.release(self.settings.index_dir, self.gallery, ok)

    def records(self, rows, photos):
        valid = self._valid_records(rows)
        with Encoder(self.settings.workers, self.model) as encoder:
            for pending in self._batches(valid, photos):
                self._encode(pending, encoder)
                try:
                    with transaction(self.db):
                        # one import at a time checks and writes faces, in any server process;
                        # the index first takes in what others wrote since (nothing to read
                        # when the sync counter, which every change of a face bumps, is where
                        # we left it)
                        self.db.lock("faceindex")
                        if not self.swept:
                            # every writer of photos holds this lock: a .tmp there now is
                            # one killed half way (it survived even the run again)
                            files.remove_unfinished(self.settings.photos_dir)
                            self.swept = True
                        self.gallery.catch_up(self.db, locked_sync_seq(self.db))
                        self._start_batch(pending)
                        for item in pending:
                            self._write_record(item)
                        self.gallery.seen_seq = locked_sync_seq(self.db)
                except BaseException:
                    self._delete_unsaved_photos()
                    raise
                self.saved_photos = set()
                self._delete_replaced_photos()

    def _delete_unsaved_photos(self):
        """The batch was rolled back (a full disk, say): the photo files it created belong to
        nobody, unless another import committed a reference meanwhile, which the same lock
        as the writes settles. If the database cannot even be read now, nothing is deleted."""
        created, self.saved_photos = self.saved_photos, set()
        with contextlib.suppress(Exception):
            with transaction(self.db):
                self.db.lock("faceindex")
                delete_unused_photos(self.db, self.settings.photos_dir, sorted(created))

    def _delete_replaced_photos(self):
        """Delete the face photos this batch replaced or withdrew, once it is committed (a
        rolled-back batch still needs them) and nothing else refers to them."""
        replaced, self.replaced_photos = self.replaced_photos, set()
        delete_unused_photos(self.db, self.settings.photos_dir, sorted(replaced))

    def _valid_records(self, rows):
        valid, seen = [], {}
        for line, cells in rows:
            try:
                record = parse_record(line, cells, self.settings.id_number_rule)
                if record.id_number in seen:
                    raise RowInvalid(line, f"ID number {record.id_number} is also on line"
                                           f" {seen[record.id_number]}")
                seen[record.id_number] = line
                valid.append(record)
            except RowInvalid as e:
                self._add("records", line, cells.get("id_number", ""), cells.get("name", ""),
                          "rejected", e.reason)
        self._tick(len(rows) - len(valid))
        return valid

    def _batches(self, records, photos):
        """Prepared records, in batches of at most batch_size rows and BATCH_BYTES of photos
        (the last photo may pass it): a batch's photos are held until it is written, and 50
        photos of 30 MB each were 1.5 GB at once, twice over while the workers had them."""
        batch, size = [], 0
        for record in records:
            item = self._prepare(record, photos)
            batch.append(item)
            size += len(item.photo or b"")
            if len(batch) >= self.settings.batch_size or size >= BATCH_BYTES:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def _prepare(self, record, photos):
        """Read the photo and decide from hashes alone whether it needs encoding."""
        item = _Pending(record, existing=citizen_row(self.db, record.id_number))
        if record.consent:
            try:
                item.photo = photos.read(record.photo)
                item.photo_sha256 = hashlib.sha256(item.photo).hexdigest()
            except (PhotoRejected, PhotoMissing) as e:
                item.reason = getattr(e, "reason", None) or str(e)
        item.row_sha256 = record.row_sha256(item.photo_sha256)
        return item

    def _encode(self, pending, encoder):
        todo = [item for item in pending if self._needs_encoding(item)]
        done_early = len(pending) - len(todo)
        self._tick(done_early)
        for item, (template, fmt, reason) in zip(todo, encoder.map([i.photo for i in todo])):
            self.result.encoded += 1
            item.template, item.image_format, item.reason = template, fmt, reason
            self._tick(1)

    def _needs_encoding(self, item):
        """Only a new photo with consent is decoded: same bytes as stored means same template."""
        if item.reason or item.photo is None:
            return False
        existing = item.existing
        return not (existing and existing["photo_sha256"] == item.photo_sha256
                    and existing["removed_at"] is None and existing["consent"]
                    and has_templates(self.db, existing["id"]))

    def _tick(self, n):
        if n:
            self.processed += n
            self.progress(self.processed, self.total)

    def _write_record(self, item):
        """Store one record (inside the batch's transaction) and note its outcome."""
        # Read again under the batch's lock: another import may have written this citizen
        # since _prepare. Two imports of one file at once flagged every row of the second as
        # a duplicate of itself ("not imported", with a pending review each).
        record = item.record
        existing = item.existing = citizen_row(self.db, record.id_number)
        duplicate = self._duplicate_of(item) if item.template is not None else None
        if item.reason:
            self._record_result(record, "rejected", item.reason)
        elif existing and existing["row_sha256"] == item.row_sha256 and existing["removed_at"] is None \
                and (item.template is None or has_templates(self.db, existing["id"])):
            self._record_result(record, "unchanged")
        elif item.template is None and self._needs_encoding(item):
            # decided against the citizen as _prepare saw it; another import gave them another
            # photo since, and this row's photo was never encoded
            self._record_result(record, "rejected", N_("changed by another import while this one ran;"
                                                    " import this file again"))
        elif duplicate:
            self._flag(item, duplicate)
        else:
            self._store_citizen(item)
            self._record_result(record, "updated" if existing else "imported",
                                "" if record.consent else "stored without a face template (consent is no)")

    def _start_batch(self, pending):
        """The false-match curve this batch decides on: of the registry as committed when the
        batch begins (inside its transaction, before any of its writes), measured now unless a
        stored report describes exactly these faces and flagged citizens (issue 24). Measured
        at the first duplicate check instead, it counted the rows the batch had written by
        then, and a report of the same sync counter made by the scheduled calibration between
        a kill and the run again described other flagged citizens: the run again stored other
        thresholds. A batch none of whose new faces comes within the duplicate ceiling of a
        registered face or of another of the batch needs no curve: measuring one costs seconds
        at a million templates, for every batch."""
        self.curve, self.thresholds = None, {}
        if self._near_any(pending):
            self.curve = calibration.curve_of(calibration.current_report(self.db, self.gallery),
                                              self.model)

    def _near_any(self, pending):
        """Whether a new face of the batch is within the duplicate ceiling of a face of the
        registry as committed or of another new face of the batch: decided on the input and
        the committed state only, so a run again asks for the curve where a clean run did."""
        ceiling = self.model.bounds.duplicate_ceiling
        faces_ = [self.model.from_blob(item.template) for item in pending if item.template is not None]
        for i, face in enumerate(faces_):
            best, _ = self.gallery.nearest_two(face)
            if best is not None and best.distance <= ceiling:
                return True
            if i and float(self.model.distances(np.stack(faces_[:i]), face).min()) <= ceiling:
                return True
        return False

    def _duplicate_of(self, item):
        """(citizen id, ID number, distance, threshold) of another citizen whose enrolled face
        is within the duplicate threshold, or None.

        A record already held for review with this photo and this match, still within the
        threshold it was held at, is the same decision: it keeps that threshold. A run again
        after a kill replays committed batches on a registry that has grown since (the later
        batches' faces, its own held records' matches left out of the curve), and re-held
        those records at thresholds no clean run had stored."""
        own = item.existing["id"] if item.existing else None
        best, runner_up = self.gallery.nearest_two(self.model.from_blob(item.template))
        other = runner_up if best and best.citizen_id == own else best
        if other is None:
            return None
        if other.distance > self.model.bounds.duplicate_ceiling:
            return None       # beyond any threshold the curve could give
        held = duplicates.waiting_review(self.db, item.record.id_number, item.photo_sha256)
        if held is not None and held["match_citizen_id"] == other.citizen_id \
                and other.distance <= held["threshold"]:
            threshold = held["threshold"]
        else:
            threshold = self._duplicate_threshold()
        if other.distance <= threshold:
            return other.citizen_id, id_number_of(self.db, other.citizen_id), other.distance, threshold
        return None

    def _duplicate_threshold(self):
        """The duplicate threshold for the gallery's size now, on the batch's curve: the size
        grows with the batch's own writes, the same ones in a clean run and in a run again."""
        size = len(self.gallery)
        if size not in self.thresholds:
            self.thresholds[size] = duplicates.duplicate_threshold(self.db, size, self.curve)
        return self.thresholds[size]

    def _flag(self, item, other):
        """Hold the record, its photo and template for an admin's decision (/admin/duplicates/)."""
        record = item.record
        citizen_id, id_number, distance, threshold = other
        photo_path = self._save_photo(item)
        review_id = duplicates.hold(self.db, self.actor, record_fields(record), photo_path,
                                    item.photo_sha256, self.model, item.template, citizen_id, distance,
                                    threshold)
        reason = (f"possible duplicate identity: face matches ID number {id_number}"
                  f" (distance {distance:.2f}); not imported, held for review"
                  f" (duplicate review {review_id})")
        audit.record(self.db, self.actor, "import.flagged", "citizen", record.id_number,
                     {"matches": id_number, "distance": round(distance, 3), "review": review_id})
        self._record_result(record, "flagged", reason)

    def _save_photo(self, item):
        # saved_photos: files this batch created (not ones it shares), deleted if it is undone
        return save_photo(self.settings.photos_dir, item.photo, item.photo_sha256, item.image_format,
                          created=self.saved_photos)

    def _store_citizen(self, item):
        record, existing = item.record, item.existing
        photo_path = existing["photo_path"] if existing else None
        photo_sha = existing["photo_sha256"] if existing else None
        if not record.consent:
            photo_path = photo_sha = None
        elif item.template is not None:
            photo_path = self._save_photo(item)
            photo_sha = item.photo_sha256
        if existing and (not record.consent or item.template is not None):
            self.replaced_photos.update(photo_paths(self.db, existing["id"]))
        citizen_id = upsert_citizen(self.db, record, existing, photo_path, photo_sha, item.row_sha256)
        if not record.consent or item.template is not None:
            # a new photo replaces every template: old ones may be of whoever was on the old photo
            self.db.execute("DELETE FROM face_templates WHERE citizen_id = ?", [citizen_id])
            self.gallery.remove(citizen_id)
        if item.template is not None:
            vector = self.model.from_blob(item.template)
            template_id = faces.add_template(self.db, citizen_id, self.model, vector,
                                             photo_path=photo_path)
            self.gallery.add(citizen_id, vector, template_id)
        return citizen_id

    def _record_result(self, record, outcome, reason=""):
        self._add("records", record.line, record.id_number, record.name, outcome, reason)

    def _add(self, file, line, id_number, name, outcome, reason=""):
        self.result.rows.append(RowResult(file, line, id_number, name, outcome, reason))

    def cases(self, rows):
        self.case_lines = {}  # case number -> the line that first named it in this file
        for start in range(0, len(rows), self.settings.batch_size):
            batch = rows[start:start + self.settings.batch_size]
            with transaction(self.db):
                for line, cells in batch:
                    self._write_case(line, cells)
            self._tick(len(batch))

    def _write_case(self, line, cells):
        try:
            case = self._valid_case(line, cells)
        except RowInvalid as e:
            return self._add("cases", line, cells.get("id_number", ""), cells.get("case_number", ""),
                             "rejected", e.reason)
        owner = citizen_row(self.db, case.id_number)
        if owner is None or owner["removed_at"] is not None:
            return self._add("cases", line, case.id_number, case.case_number, "rejected",
                             f"ID number {case.id_number} is not among the citizen records")
        holder = case_holder(self.db, case.case_number)
        if holder is not None and holder["citizen_id"] != owner["id"]:
            # A case never moves to another citizen by import: a typo in one ID number
            # would hand one citizen's tax file to another (and flip back on the next file).
            return self._add("cases", line, case.id_number, case.case_number, "rejected",
                             f"case number {case.case_number} belongs to ID number"
                             f" {mask(holder['id_number'])}, not to {mask(case.id_number)};"
                             " a case is never moved to another citizen by import")
        outcome = upsert_case(self.db, case, owner["id"])
        self._add("cases", line, case.id_number, case.case_number, outcome)

    def _valid_case(self, line, cells):
        """The parsed case, or RowInvalid; a case number named again later in the file is
        refused for the later rows (which of two owners is meant is for a person to say)."""
        number = cells.get("case_number", "")
        first = self.case_lines.setdefault(number, line) if number else line
        case = parse_case(line, cells, self.settings.id_number_rule)
        if first != line:
            raise RowInvalid(line, f"case number {number} is also on line {first};"
                                   " a case number may appear once in a file")
        return case


# --- rows in the database -------------------------------------------------------------------

def load_gallery(db, index_dir=None):
    """The 1:N index of every enrolled template for the duplicate check: the one kept in
    index_dir when it still matches the database, else rebuilt from the database."""
    if index_dir:
        return faceindex.open_index(db, index_dir)
    return faceindex.load_from_db(db)


# An import holds the index for its whole run (minutes for thousands of photos). A change of
# one citizen's face (server/enrolment.py) must not queue behind it: behind a proxy that was
# a 504, then a write nobody saw. So imports say here that they hold or wait for the index,
# and gallery_unless_importing hands it out only when none does, deciding under the same
# lock, so an import starting meanwhile waits for the one change instead.
_IMPORTING = Counter()              # index folder (None: in memory) -> imports of this process
_IMPORTING_LOCK = threading.Lock()


@contextlib.contextmanager
def _importing(index_dir):
    key = os.path.abspath(index_dir) if index_dir else None
    with _IMPORTING_LOCK:
        _IMPORTING[key] += 1
    try:
        yield
    finally:
        with _IMPORTING_LOCK:
            _IMPORTING[key] -= 1


def gallery_unless_importing(db, index_dir=None):
    """load_gallery() for a one-citizen change, or None at once while an import of this
    process holds or waits for the index (hand it back with faceindex.release)."""
    with _IMPORTING_LOCK:
        if _IMPORTING[os.path.abspath(index_dir) if index_dir else None]:
            return None
        return load_gallery(db, index_dir)


def locked_sync_seq(db):
    """The sync counter, its row locked to the end of the transaction: no other process
    changes a face (each change bumps it) until this batch is written."""
    return db.execute("SELECT seq FROM sync_counter WHERE id = 1" + db.for_update).fetchone()[0]


def id_number_of(db, citizen_id):
    row = db.execute("SELECT id_number FROM citizens WHERE id = ?", [citizen_id]).fetchone()
    return row[0] if row else "?"


def citizen_row(db, id_number):
    return db.execute("SELECT * FROM citizens WHERE id_number = ?", [id_number]).fetchone()


def has_templates(db, citizen_id):
    return db.execute("SELECT 1 FROM face_templates WHERE citizen_id = ? LIMIT 1",
                      [citizen_id]).fetchone() is not None


def upsert_citizen(db, record, existing, photo_path, photo_sha256, row_sha256):
    """Insert or update one citizen (inside a transaction); returns its id. Bumps sync_seq:
    devices fetch every citizen whose seq is above the last one they hold."""
    values = {"name": record.name, "phone": record.phone, "language": record.language,
              "district": record.district, "consent": int(record.consent),
              "photo_path": photo_path, "photo_sha256": photo_sha256, "row_sha256": row_sha256,
              "sync_seq": next_sync_seq(db), "updated_at": now_iso()}
    if existing:
        assignments = ", ".join(f"{k} = ?" for k in values)
        db.execute(f"UPDATE citizens SET {assignments}, removed_at = NULL WHERE id = ?",
                   [*values.values(), existing["id"]])
        return existing["id"]
    values.update(id_number=record.id_number, key=new_citizen_key(), created_at=values["updated_at"])
    return db.insert(
        f"INSERT INTO citizens ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})"
        " RETURNING id", list(values.values()))


def photo_paths(db, citizen_id):
    """The photo files a citizen's row and face templates refer to."""
    rows = db.execute("SELECT photo_path FROM citizens WHERE id = ? UNION"
                      " SELECT photo_path FROM face_templates WHERE citizen_id = ?",
                      [citizen_id, citizen_id])
    return sorted(row[0] for row in rows if row[0])


def delete_unused_photos(db, photos_dir, paths):
    """Delete photo files no citizen, template or held record refers to any more (photos are
    named by content, so two citizens may share one file). Call it after the change that
    stopped using them is committed."""
    for path in paths:
        used = db.execute(
            "SELECT 1 FROM citizens WHERE photo_path = ? UNION ALL"
            " SELECT 1 FROM face_templates WHERE photo_path = ? UNION ALL"
            " SELECT 1 FROM duplicate_reviews WHERE photo_path = ? AND status = 'pending'",
            [path, path, path]).fetchone()
        full = os.path.join(photos_dir, os.path.basename(path))
        if not used and os.path.isfile(full):
            os.remove(full)


def record_fields(record):
    """A Record as the form fields it came from (kept with a held duplicate)."""
    return {"id_number": record.id_number, "name": record.name, "phone": record.phone,
            "language": record.language, "district": record.district,
            "consent": "yes" if record.consent else "no"}


def save_photo(photos_dir, data, sha256, fmt, created=None):
    """Store photo bytes as <sha256>.<ext> (written whole); returns the file name, also added
    to the set `created` when this call wrote it. A format browsers cannot show is stored as a
    JPEG copy, still named by the original's hash (so the same upload is recognised again)."""
    name = photo_name(sha256, fmt)
    path = os.path.join(photos_dir, name)
    if not os.path.exists(path):
        os.makedirs(photos_dir, exist_ok=True)
        try:
            write_whole(path, data if _shown(fmt) else browser_copy(data))
        except OSError as e:   # a write() names no file: say which folder filled up
            if disk.is_full(e) and not isinstance(e, disk.Full):
                raise disk.Full(os.path.basename(os.path.abspath(photos_dir))) from e
            raise
        if created is not None:
            created.add(name)
    return name


def photo_name(sha256, fmt):
    """The stored file's name: a JPEG copy's for a format browsers cannot show ("img")."""
    return f"{sha256}.{fmt if _shown(fmt) else 'jpg'}"


def _shown(fmt):
    return fmt not in (None, "img")


def case_holder(db, case_number):
    """The case's citizen (citizen_id, id_number), or None for a new case number."""
    return db.execute("SELECT k.citizen_id, c.id_number FROM cases k"
                      " JOIN citizens c ON c.id = k.citizen_id WHERE k.case_number = ?",
                      [case_number]).fetchone()


def upsert_case(db, case, citizen_id):
    """Insert or update a case by case_number; returns imported, updated or unchanged."""
    values = {"citizen_id": citizen_id, "type": case.type, "status": case.status,
              "summary": case.summary, "counter": case.counter,
              "appointment_at": case.appointment_at}
    row = db.execute("SELECT * FROM cases WHERE case_number = ?", [case.case_number]).fetchone()
    if row and all(row[k] == v for k, v in values.items()):
        return "unchanged"
    values["updated_at"] = now_iso()
    if row:
        assignments = ", ".join(f"{k} = ?" for k in values)
        db.execute(f"UPDATE cases SET {assignments} WHERE id = ?", [*values.values(), row["id"]])
        return "updated"
    values.update(case_number=case.case_number, created_at=values["updated_at"])
    db.execute(f"INSERT INTO cases ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
               list(values.values()))
    return "imported"


# --- the report -----------------------------------------------------------------------------

def write_report(path, result):
    """The row-by-row report as CSV (UTF-8 with BOM, so spreadsheet programs show Chinese names)."""
    with open(path, "w", newline="", encoding="utf-8-sig") as f:
        writer = csv.writer(f)
        writer.writerow(REPORT_COLUMNS)
        for r in result.rows:
            writer.writerow([r.file, r.line] + [_cell(v) for v in (r.id_number, r.name, r.outcome,
                                                                   r.reason)])


FORMULA_START = ("=", "+", "-", "@")


def _cell(value):
    """A report cell a spreadsheet will not run: a leading = + - @ becomes text ('=...).
    The report carries names from the uploaded file, and admins open it in Excel or WPS."""
    value = str(value)
    return "'" + value if value.startswith(FORMULA_START) else value


def read_report(path):
    """The rows of a report written by write_report, as dicts."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [{k: _uncell(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _uncell(value):
    return value[1:] if value and value.startswith("'") and value[1:].startswith(FORMULA_START) \
        else value
