"""What a system keeps on disk once its server has stopped: the files under its directory, and,
for Tracehouse, its tables' active parts (from the embedded store's system.parts).

A ClickHouse merge leaves the parts it replaced on disk until a cleanup thread removes them (every
30 s or more, and not at all when the process stops first), so right after a short ingest a
store holds its data about twice; `settled` leaves those parts out, as time would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tracehouse_collector.store.schema import DATABASE

from bench.collector import clean_env

# Read by a child process: chDB opens one directory per process, and this one may have opened
# another. The server has stopped, so the directory is free.
_QUERY = """
import sys, chdb.session
print(chdb.session.Session(sys.argv[1]).query(sys.argv[2], "JSONEachRow"))
"""
ACTIVE_PARTS = (
    "SELECT table, rows, bytes_on_disk, secondary_indices_compressed_bytes AS index_bytes, path"
    f" FROM system.parts WHERE active AND database = '{DATABASE}'"
)
# partition_min_max_level, and _mutation when a mutation rewrote it
PART_NAME = re.compile(r"\w+_\d+_\d+_\d+(_\d+)?")


@dataclass(frozen=True)
class Usage:
    allocated: int  # bytes of disk blocks the files hold (what `du` counts)
    apparent: int  # bytes the files hold (what `du --apparent-size` counts)


@dataclass(frozen=True)
class Part:
    table: str
    rows: int
    bytes: int  # bytes_on_disk: its files' sizes
    index_bytes: int  # of which its data-skipping indexes' (the full-text index, bloom filters)
    path: Path


def disk_usage(root: Path, skip: Iterable[Path] = (), skip_suffix: str = ".log") -> Usage:
    """The files under `root` but those under `skip` and the benchmark's logs (a file with
    several hard links once)."""
    skipped = {Path(p) for p in skip}
    seen: set[tuple[int, int]] = set()
    allocated = apparent = 0
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(dirpath, d) not in skipped]
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if name.endswith(skip_suffix) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            allocated += st.st_blocks * 512
            apparent += st.st_size
    return Usage(allocated, apparent)


def active_parts(chdb_dir: Path) -> list[Part]:
    """Tracehouse's active parts in the (closed) embedded store at `chdb_dir`."""
    out = subprocess.run(
        [sys.executable, "-c", _QUERY, str(chdb_dir), ACTIVE_PARTS],
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [
        Part(r["table"], int(r["rows"]), int(r["bytes_on_disk"]), int(r["index_bytes"]), Path(r["path"]))
        for r in rows
    ]


def replaced_parts(active: list[Part]) -> list[Path]:
    """The part directories beside the active ones that are not active: those merges replaced."""
    keep = {p.path.resolve() for p in active}
    tables = {p.path.resolve().parent for p in active}
    return sorted(
        d for t in tables for d in t.iterdir() if d.is_dir() and PART_NAME.fullmatch(d.name) and d not in keep
    )
