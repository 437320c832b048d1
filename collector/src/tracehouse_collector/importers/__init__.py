"""Run snapshot formats, behind one registry: `tracehouse import` asks `FORMATS` which one a file is.

Every reader yields run snapshots in the shape of snapshot.py's `tracehouse-run.json`; load.py
turns them into run records and loads them. Tracehouse's own snapshot is also what `tracehouse runs
export` writes by default (snapshot.py); `--format luml` writes LUML's experiment export
(luml_export.py), which the `luml-experiment` reader takes back. A new format is a module with a
detector and a reader, and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

from tracehouse_collector.importers import luml, snapshot


class Format(NamedTuple):
    label: str
    detect: Callable[[Path], bool]  # cheap: looks at the file, says whether `read` takes it
    read: Callable[[Path], Iterable[dict]]  # the file's run snapshots


FORMATS: dict[str, Format] = {
    "tracehouse": Format("Tracehouse run snapshot", snapshot.is_snapshot, snapshot.read_snapshot),
    "luml-model": Format("LUML model file (.luml)", luml.is_luml_model, luml.read_luml_model),
    "luml-experiment": Format("LUML experiment export", luml.is_luml_experiment, luml.read_luml_experiment),
}


def detect(path: Path) -> Format | None:
    """The first format whose detector takes the file, in FORMATS' order."""
    for fmt in FORMATS.values():
        try:
            if fmt.detect(path):
                return fmt
        except Exception:  # a detector that cannot read this kind of file just says no
            continue
    return None
