"""Reading a CSV file as offices export it: its encoding (UTF-8 with or without BOM, UTF-16
with BOM, Windows-1252) and delimiter (comma, semicolon, tab) detected, and its records
streamed as ``(line, fields)`` pairs, one bounded physical line at a time.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from mailer.errors import InvalidInput

#: Fields longer than this are refused rather than held in memory (csv's default is 128 KiB).
csv.field_size_limit(1_000_000)


# --- encoding and dialect --------------------------------------------------------------------

def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` / ``utf-16`` when the file starts with that BOM, ``utf-8`` when the whole
    file decodes as UTF-8, otherwise ``cp1252`` (what Excel on Windows writes)."""
    with path.open("rb") as handle:
        start = handle.read(4)
        if start.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        handle.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while block := handle.read(1 << 20):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp1252"
    return "utf-8"


def detect_delimiter(first_line: str) -> str:
    """The most frequent of comma, semicolon and tab in the header line (comma on a tie)."""
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def open_text(path: Path) -> tuple[IO[str], str]:
    """Open ``path`` for csv with its detected encoding. Raises InvalidInput when missing."""
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    encoding = detect_encoding(path)
    if not encoding.startswith("utf-16") and _looks_binary(path):
        raise InvalidInput(f"{path}: this is a binary file, not a CSV (export it as CSV first)")
    # cp1252 leaves five bytes undefined; a stray one must not abort a whole import.
    errors = "replace" if encoding == "cp1252" else "strict"
    return path.open("r", encoding=encoding, errors=errors, newline=""), encoding


def _looks_binary(path: Path) -> bool:
    """A NUL byte in the first 8 KiB: a spreadsheet (.xlsx), an image, not a text export."""
    with path.open("rb") as handle:
        return b"\x00" in handle.read(8192)


#: The longest physical line read (characters): far past any subscriber record, and a bound
#: on memory for a file that has no line breaks at all.
MAX_LINE = 1_000_000


def read_rows(handle: IO[str]) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, fields)`` for each record, ``line`` being the 1-based line it starts on
    (a quoted field may span several lines). The header is the first record. Raises
    InvalidInput for a line longer than ``MAX_LINE``, having read no more than that of it."""
    delimiter = detect_delimiter(next(_bounded_lines(handle), ""))
    handle.seek(0)
    reader = csv.reader(_bounded_lines(handle), delimiter=delimiter, strict=False)
    previous_end = 0
    try:
        for fields in reader:
            yield previous_end + 1, fields
            previous_end = reader.line_num
    except csv.Error as exc:
        raise InvalidInput(f"line {previous_end + 1}: cannot read the CSV ({exc})") from None


def _bounded_lines(handle: IO[str]) -> Iterator[str]:
    number = 0
    while line := handle.readline(MAX_LINE + 1):
        number += 1
        if len(line) > MAX_LINE and not line.endswith(("\n", "\r")):
            raise InvalidInput(f"line {number} is longer than {MAX_LINE:,} characters: this "
                               "is not a list of subscribers (a file without line breaks?)")
        yield line
