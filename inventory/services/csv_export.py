"""The one CSV writer: every CSV the service gives out (the discrepancy download, the
accountability report, and any added later) is written here, so none can carry a formula.

A spreadsheet runs a cell that begins with `=`, `+`, `-` or `@` as a formula (and one that
begins with a tab or a carriage return may be read the same way once trimmed); serials, makers,
places and notes come from people and monitors outside our control, so `=HYPERLINK(...)` in a
sighting must reach the auditor's spreadsheet as text. Following OWASP's advice on CSV injection,
such a text cell is written with a leading single quote, which spreadsheets show as text and do
not evaluate. The full-width forms of those characters get the same treatment (some spreadsheets
read them as the ASCII ones). Numbers are written as numbers: only text is neutralised."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
# How the API documents it, in the description of each `format=csv`.
CSV_SAFETY = "text beginning with =, +, -, @, a tab or a CR starts with ' (never a formula)"


def cell(value: Any) -> Any:
    """`value` as it may go into a CSV cell: None as empty, a formula-like text quoted."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class CsvWriter:
    """Rows in, CSV text out: `writerow` as `csv.writer`'s, then `getvalue` for all of it, or
    `row` to take each row's text as it is written (for streaming)."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._out = csv.writer(self._buffer)

    def writerow(self, values: Iterable[Any]) -> None:
        self._out.writerow([cell(value) for value in values])

    def getvalue(self) -> str:
        """What was written since the last `row` or `getvalue`, and forget it."""
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text

    def row(self, values: Iterable[Any]) -> str:
        """One row as CSV text, ending in CRLF."""
        self.writerow(values)
        return self.getvalue()
