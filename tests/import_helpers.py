"""Builders for import tests: valid PRC ID numbers, CSV files in any encoding, photo zips,
and broken photos made from the real ones in tests/data/faces."""
import csv
import io
import struct
import zipfile
import zlib

from conftest import FACES, PEOPLE
from server.importer import prc_check_digit

RECORD_HEADER = ["id_number", "name", "phone", "photo", "language", "district", "consent"]
CASE_HEADER = ["case_number", "id_number", "type", "status", "summary", "counter", "appointment_at"]


def id_number(n, birth="19800101", region="440106"):
    """A valid 18-character PRC resident ID number; n makes it unique."""
    first17 = f"{region}{birth}{n % 1000:03d}"
    return first17 + prc_check_digit(first17)


def bad_check_digit(number):
    """The same ID number with a wrong last character."""
    wrong = "0" if number[-1] != "0" else "1"
    return number[:-1] + wrong


def write_csv(path, header, rows, encoding="utf-8"):
    """Write rows (lists or dicts) under header; encoding e.g. "utf-8", "utf-8-sig", "gbk"."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(h, "") for h in header] if isinstance(row, dict) else row)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def record(n, name, photo, **extra):
    return {"id_number": id_number(n), "name": name, "phone": f"138 0013 {n:04d}", "photo": photo,
            **extra}


def people_photo(person, index=1):
    return (PEOPLE / person / f"{index}.jpg").read_bytes()


def group_photo(name="two_people.jpg"):
    return (FACES / "group" / name).read_bytes()


def edge_photo(name):
    return (FACES / "edge" / name).read_bytes()


def truncated_jpeg():
    """The first third of a real JPEG: decodes partly, then ends."""
    data = people_photo("barack_obama", 2)
    return data[:len(data) // 3]


def text_as_jpg():
    return "id_number,name\nthis is not a photo\n".encode()


def huge_png_header(width=12000, height=12000):
    """A PNG whose header claims width x height pixels (a decompression bomb's first bytes)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))


def make_zip(path, members):
    """A zip of {entry name: bytes}; names are written as given, '../' ones included."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return path


def photo_folder(folder, members):
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in members.items():
        (folder / name).write_bytes(data)
    return folder
