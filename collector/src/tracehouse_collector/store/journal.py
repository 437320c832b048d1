"""The on-disk journal of batches between "accepted" and "inserted".

A batch is written here (rows per table, then a meta file naming its requests) before it is
inserted, and removed after. If the collector dies in between, the next start re-inserts what
it finds with the same deduplication tokens: ClickHouse drops blocks it already has, so a batch
lands exactly once whether or not the first insert completed.

The journal also keeps the keys of recently committed requests, so an exporter that retries a
request whose acknowledgement it never saw (timeout, collector restart) is answered success
without storing the rows twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


class JournalLockedError(Exception):
    pass


@dataclass
class Segment:
    """One request's rows inside a batch file."""

    key: str
    offset: int
    length: int


@dataclass
class JournalBatch:
    batch_id: str
    keys: list[str]
    files: dict[str, Path]  # table -> file of rows
    segments: dict[str, list[Segment]]  # table -> per-request byte ranges of that file


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    def __init__(self, directory: Path, *, fsync: bool = True, max_keys: int = 200_000) -> None:
        self.directory = directory
        self.batches_dir = directory / "batches"
        self.keys_path = directory / "committed-keys.log"
        self.fsync = fsync
        self.max_keys = max_keys
        self.batches_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise JournalLockedError(
                f"the journal {directory} is in use by another collector; give each collector its own --data-dir"
            ) from None
        self._keys_written = 0

    @staticmethod
    def new_batch_id() -> str:
        # Sortable by time, unique across restarts.
        return f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"

    def write(self, batch_id: str, blocks: dict[str, list[tuple[str, bytes]]]) -> JournalBatch:
        """Persist a batch: for each table, the (request key, rows) pieces in order."""
        files: dict[str, Path] = {}
        segments: dict[str, list[Segment]] = {}
        keys: list[str] = []
        for table, pieces in blocks.items():
            path = self.batches_dir / f"{batch_id}.{table}.jsonl"
            offset = 0
            segs = []
            with open(path, "wb") as fh:
                for key, data in pieces:
                    fh.write(data)
                    segs.append(Segment(key, offset, len(data)))
                    offset += len(data)
                    if key not in keys:
                        keys.append(key)
                if self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            files[table] = path
            segments[table] = segs
        meta = {
            "batch_id": batch_id,
            "keys": keys,
            "tables": {t: [[s.key, s.offset, s.length] for s in segs] for t, segs in segments.items()},
        }
        # The meta file is what makes a batch exist: written last, atomically.
        tmp = self.batches_dir / f"{batch_id}.meta.tmp"
        with open(tmp, "w") as fh:
            json.dump(meta, fh)
            if self.fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, self.batches_dir / f"{batch_id}.meta.json")
        if self.fsync:
            _fsync_dir(self.batches_dir)
        return JournalBatch(batch_id, keys, files, segments)

    def pending(self) -> list[JournalBatch]:
        """Batches written but not completed, oldest first. Debris of unfinished writes is removed."""
        out = []
        metas = sorted(self.batches_dir.glob("*.meta.json"))
        live = {p.name[: -len(".meta.json")] for p in metas}
        for p in self.batches_dir.iterdir():
            batch_id = p.name.split(".", 1)[0]
            if batch_id not in live:
                p.unlink(missing_ok=True)  # never acknowledged: its exporters still hold the data
        for meta_path in metas:
            meta = json.loads(meta_path.read_text())
            batch_id = meta["batch_id"]
            files = {t: self.batches_dir / f"{batch_id}.{t}.jsonl" for t in meta["tables"]}
            segments = {t: [Segment(k, o, n) for k, o, n in segs] for t, segs in meta["tables"].items()}
            out.append(JournalBatch(batch_id, list(meta["keys"]), files, segments))
        return out

    def complete(self, batch: JournalBatch, committed_keys: Iterable[str]) -> None:
        """Record the batch's requests as committed, then forget its rows."""
        lines = "".join(f"{k}\n" for k in committed_keys)
        if lines:
            with open(self.keys_path, "a") as fh:
                fh.write(lines)
            self._keys_written += lines.count("\n")
            if self._keys_written > self.max_keys:
                self._compact_keys()
        (self.batches_dir / f"{batch.batch_id}.meta.json").unlink(missing_ok=True)
        for path in batch.files.values():
            path.unlink(missing_ok=True)

    def recent_keys(self) -> OrderedDict[str, None]:
        keys: OrderedDict[str, None] = OrderedDict()
        if self.keys_path.exists():
            with open(self.keys_path) as fh:
                for line in fh:
                    key = line.strip()
                    if key:
                        keys[key] = None
                        keys.move_to_end(key)
            while len(keys) > self.max_keys:
                keys.popitem(last=False)
        return keys

    def _compact_keys(self) -> None:
        keys = list(self.recent_keys())
        tmp = self.keys_path.with_suffix(".tmp")
        tmp.write_text("".join(f"{k}\n" for k in keys))
        os.replace(tmp, self.keys_path)
        self._keys_written = len(keys)

    def close(self) -> None:
        os.close(self._lock_fd)
