"""Rendering of result sets for the CLI: --format table|json|csv."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from tracehouse_collector.formatting import table_marks
from tracehouse_collector.query.values import jsonable

FORMATS = ("table", "json", "csv")


def _cell(value: Any) -> str:
    v = jsonable(value)
    if isinstance(v, (dict, list)):
        import orjson  # only where a cell holds one: orjson's import is a third of a command's start-up

        return orjson.dumps(v).decode()
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _table_cell(value: Any) -> str:
    # A double to 15 significant digits, all it holds exactly: a mean of scores reads 0.8, not
    # 0.7999999999999999 (JSON and CSV keep the shortest round-trip form).
    if isinstance(value, float):
        text = format(value, ".15g")
        return text if abs(float(text)) != float("inf") or abs(value) == float("inf") else repr(value)
    return _cell(value)


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    if fmt == "json":
        import orjson

        records = [{c: jsonable(v) for c, v in zip(columns, row, strict=True)} for row in rows]
        return orjson.dumps(records, option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(v) for v in row])
        return buf.getvalue()
    if fmt == "table":
        cells = []
        for row in rows:
            marks = table_marks(columns, row)
            cells.append([marks.get(i, _table_cell(v)).replace("\n", "\\n") for i, v in enumerate(row)])
        widths = [len(c) for c in columns]
        for row in cells:
            for i, c in enumerate(row):
                widths[i] = min(max(widths[i], len(c)), 80)
        def line(values: Sequence[str]) -> str:
            return "  ".join(
                (v if len(v) <= w else v[: w - 1] + "…").ljust(w) for v, w in zip(values, widths, strict=True)
            ).rstrip()
        out = [line(columns), line(["-" * w for w in widths])]
        out += [line(r) for r in cells]
        out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
        return "\n".join(out) + "\n"
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
