"""Find personal values where they must never be (R3.1): one scanner for every privacy test.

A personal value rarely reaches a table, a message or a log line in the form a
test typed it: JSON encoders escape non-ASCII (``Heloísa`` becomes
``Helo\\u00edsa``, twice over inside a JSON string inside JSON), the service
normalises a phone to E.164, a log line may print a date the Brazilian way or
percent-encode an e-mail in a URL, and letters change case. A search for the
raw value alone sees none of that. :class:`LeakScanner` looks for every value
in each of those forms, case-folded, in any text:

* the value itself, Unicode NFC and NFD, and stripped of its accents;
* JSON-escaped, ASCII-only (``\\u00ed``) and not, and escaped twice (JSON in JSON);
* percent-encoded (``%40``, ``%C3%AD``; spaces as ``%20`` or ``+``);
* a phone (10 to 13 digits): E.164 with and without ``+``, the national number
  with the area code, with and without punctuation (``(31) 98888-1234``,
  ``31 98888-1234``, ``31988881234``) and the subscriber number (``98888-1234``);
* a date (``YYYY-MM-DD``): ISO, ``DD/MM/YYYY`` (slashes JSON-escaped too),
  ``DD-MM-YYYY``, ``DD.MM.YYYY`` and ``DDMMYYYY``/``YYYYMMDD``;
* a postal code (CEP, ``NNNNN-NNN``): with and without the dash.

Values shorter than :data:`MIN_LENGTH` are refused: a scan for ``SP`` or ``42``
would find them everywhere and prove nothing. Sources are whatever a test can
read: database rows (:func:`table_texts`), broker message bodies, audit records,
the log files of a running platform (:func:`log_texts`).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import sqlalchemy as sa

MIN_LENGTH = 5
EXCERPT = 60  # characters shown either side of a leak

_PHONE = re.compile(r"^\+?[\d\s().-]{8,}$")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_CEP = re.compile(r"^(\d{5})-?(\d{3})$")


@dataclass(frozen=True)
class Leak:
    value: str  # the personal value, as the test gave it
    form: str  # the form found (case-folded)
    where: str  # what was scanned: a table and row, a queue, a log file and line
    excerpt: str  # the text around it

    def __str__(self) -> str:
        return f"{self.value!r} as {self.form!r} in {self.where}: …{self.excerpt}…"


def _escaped(text: str) -> set[str]:
    ascii_only = json.dumps(text)[1:-1]
    raw = json.dumps(text, ensure_ascii=False)[1:-1]
    return {ascii_only, raw, json.dumps(ascii_only)[1:-1], json.dumps(raw, ensure_ascii=False)[1:-1],
            ascii_only.replace("/", "\\/")}


def _unaccented(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _phone_forms(value: str) -> set[str]:
    if not _PHONE.match(value.strip()):
        return set()
    digits = re.sub(r"\D", "", value)
    if not 10 <= len(digits) <= 13:
        return set()
    national = digits[2:] if digits.startswith("55") and len(digits) >= 12 else digits
    area, subscriber = national[:2], national[2:]
    split = len(subscriber) - 4
    dashed = f"{subscriber[:split]}-{subscriber[split:]}"
    return {
        f"+55{national}", f"55{national}", national, f"+55 {area} {dashed}", f"+55 ({area}) {dashed}",
        f"({area}) {dashed}", f"({area}){dashed}", f"{area} {dashed}", f"{area}-{dashed}", f"{area} {subscriber}",
        dashed, subscriber if len(subscriber) >= 9 else dashed,
    }


def _date_forms(value: str) -> set[str]:
    match = _DATE.match(value.strip())
    if not match:
        return set()
    year, month, day = match.groups()
    return {f"{year}-{month}-{day}", f"{day}/{month}/{year}", f"{day}-{month}-{year}", f"{day}.{month}.{year}",
            f"{day}{month}{year}", f"{year}{month}{day}", f"{year}/{month}/{day}"}


def _cep_forms(value: str) -> set[str]:
    match = _CEP.match(value.strip())
    return {f"{match[1]}-{match[2]}", f"{match[1]}{match[2]}"} if match else set()


def forms_of(value: str) -> set[str]:
    """Every form of ``value`` the scanner looks for, case-folded."""
    if not isinstance(value, str) or len(value.strip()) < MIN_LENGTH:
        raise ValueError(f"a personal value to scan for needs {MIN_LENGTH} characters or more, got {value!r}")
    value = value.strip()
    base = {value, unicodedata.normalize("NFC", value), unicodedata.normalize("NFD", value), _unaccented(value)}
    base |= _phone_forms(value) | _date_forms(value) | _cep_forms(value)
    forms: set[str] = set()
    for text in base:
        forms |= {text, quote(text, safe=""), quote_plus(text, safe=""), quote(text, safe="@")}
        forms |= _escaped(text)
    return {form.casefold() for form in forms if len(form) >= MIN_LENGTH}


def as_texts(item: Any) -> list[str]:
    """The texts to scan in ``item``: a string as it is, bytes decoded (UTF-8, invalid bytes replaced),
    anything else as JSON (non-ASCII kept; the scanner finds escaped forms too)."""
    if isinstance(item, str):
        return [item]
    if isinstance(item, bytes | bytearray | memoryview):
        return [bytes(item).decode("utf-8", errors="replace")]
    return [json.dumps(item, ensure_ascii=False, default=str, sort_keys=True)]


class LeakScanner:
    """``LeakScanner(values).scan(sources)`` -> every :class:`Leak` of any value in any source."""

    def __init__(self, values: Iterable[str]) -> None:
        self.values = tuple(dict.fromkeys(values))
        if not self.values:
            raise ValueError("no personal values to scan for")
        self.forms = {value: forms_of(value) for value in self.values}
        # longest first: a leak is reported in its most specific form
        self._forms = sorted({(form, value) for value, fs in self.forms.items() for form in fs},
                             key=lambda pair: (-len(pair[0]), pair[0]))
        self.scanned = 0  # texts scanned so far

    def find(self, text: str | bytes | Any, where: str = "") -> list[Leak]:
        leaks: list[Leak] = []
        for one in as_texts(text):
            self.scanned += 1
            folded = one.casefold()
            found: set[str] = set()
            for form, value in self._forms:
                start = folded.find(form)
                if start < 0 or value in found:
                    continue
                found.add(value)  # one leak per value and text, in its longest form
                leaks.append(Leak(value, form, where, folded[max(0, start - EXCERPT):start + len(form) + EXCERPT]))
        return leaks

    def scan(self, sources: Mapping[str, Iterable[Any]] | Iterable[tuple[str, Any]]) -> list[Leak]:
        """``sources``: ``{label: texts}``, or ``(where, text)`` pairs."""
        pairs: Iterable[tuple[str, Any]]
        if isinstance(sources, Mapping):
            pairs = ((f"{label}[{i}]", text) for label, texts in sources.items() for i, text in enumerate(texts))
        else:
            pairs = sources
        return [leak for where, text in pairs for leak in self.find(text, where)]

    def assert_clean(self, sources: Mapping[str, Iterable[Any]] | Iterable[tuple[str, Any]]) -> int:
        """Fail naming every leak; returns how many texts were scanned (a test checks it scanned something)."""
        before = self.scanned
        leaks = self.scan(sources)
        if leaks:
            shown = "\n  ".join(str(leak) for leak in leaks[:20])
            raise AssertionError(f"{len(leaks)} personal value(s) in clear:\n  {shown}")
        return self.scanned - before


# -- sources ---------------------------------------------------------------------------------------


def table_texts(engine: sa.Engine, table: str) -> list[tuple[str, str]]:
    """``(table#n, text)`` per row of ``table``: every column, JSON columns as the database holds them,
    bytes decoded (ciphertext stays noise)."""
    out: list[tuple[str, str]] = []
    with engine.connect() as conn:
        for n, row in enumerate(conn.execute(sa.text(f"SELECT * FROM {table}"))):
            values = {key: (bytes(value).decode("utf-8", errors="replace")
                            if isinstance(value, bytes | memoryview) else value)
                      for key, value in row._mapping.items()}
            out.append((f"{table}#{n}", json.dumps(values, ensure_ascii=False, default=str)))
    return out


def log_texts(directory: str | Path) -> Iterator[tuple[str, str]]:
    """``(file, text)`` for every file under ``directory`` (a platform's ``logs/``), read whole."""
    for path in sorted(Path(directory).rglob("*")):
        if path.is_file():
            yield str(path.relative_to(directory)), path.read_text(encoding="utf-8", errors="replace")
