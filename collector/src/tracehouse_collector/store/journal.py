"""The on-disk journal of rows between "accepted" and "inserted".

Layout under the journal directory:
- ``spool/``: one file of encoded rows per request and table (its extension names the
  format, see processors/encoding.py), written (and fsync'd) by the
  decoding workers. A spool file not yet in a batch belongs to an export that has not been
  acknowledged, so it is deleted at start: its exporter still holds the data and retries.
- ``batches/<batch id>/``: the spool files of one flush, renamed in, and ``meta.json`` naming
  its requests. The meta file, written last and atomically, is what makes the batch exist:
  from then on the batch is in the on-disk queue, durable (fsync'd files and directories), and
  its requests may be acknowledged before they are inserted (see writer.py).
- ``quarantine/<batch id>/``: rows of requests that ClickHouse refused as invalid data, with
  ``reasons.json``; kept for an operator, never retried.
- ``committed-keys.log``: keys of recently committed requests.

A batch is inserted with a deduplication token derived from its id and removed afterwards.
If the collector dies in between, the next start re-inserts it with the same token:
ClickHouse drops blocks it already has, so a batch lands exactly once whether or not the first
insert completed. The committed keys let a retried export whose acknowledgement was lost
(timeout, restart) be answered success without storing its rows twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


class JournalLockedError(Exception):
    pass


@dataclass
class JournalBatch:
    batch_id: str
    directory: Path
    keys: list[str]
    tables: dict[str, list[tuple[str, Path]]]  # table -> [(request key, file)] in order
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # request key -> (rows, bytes)

    @property
    def rows(self) -> int:
        return sum(r for r, _ in self.sizes.values())

    @property
    def nbytes(self) -> int:
        return sum(b for _, b in self.sizes.values())

    def patterns(self, table: str) -> dict[str, str]:
        """Globs matching exactly this batch's files for `table`, one per file extension
        (the extension names the insert format; a batch normally has one)."""
        exts = sorted({path.suffix.lstrip(".") for _key, path in self.tables.get(table, [])})
        return {ext: str(self.directory / f"*.{table}.{ext}") for ext in exts}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    def __init__(self, directory: Path, *, fsync: bool = True, max_keys: int = 200_000) -> None:
        self.directory = directory
        self.spool_dir = directory / "spool"
        self.batches_dir = directory / "batches"
        self.quarantine_dir = directory / "quarantine"
        self.keys_path = directory / "committed-keys.log"
        self.fsync = fsync
        self.max_keys = max_keys
        for d in (self.spool_dir, self.batches_dir):
            d.mkdir(parents=True, exist_ok=True)
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

    def write(
        self,
        batch_id: str,
        requests: list[tuple[str, dict[str, str]]],
        sizes: dict[str, tuple[int, int]] | None = None,
    ) -> JournalBatch:
        """Make a batch of spooled requests: [(request key, {table: spool file})], with each
        request's (rows, bytes) recorded so that a restart knows how full the queue is."""
        directory = self.batches_dir / batch_id
        directory.mkdir()
        try:
            return self._write(batch_id, directory, requests, sizes or {})
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)  # not acknowledged: nothing to keep
            raise

    def _write(
        self, batch_id: str, directory: Path, requests: list[tuple[str, dict[str, str]]], sizes: dict
    ) -> JournalBatch:
        keys: list[str] = []
        tables: dict[str, list[tuple[str, Path]]] = {}
        for i, (key, files) in enumerate(requests):
            keys.append(key)
            for table, spool_path in files.items():
                # keep the extension: it names the format the rows are in
                target = directory / f"{i:06d}.{table}{os.path.splitext(spool_path)[1]}"
                os.rename(spool_path, target)
                tables.setdefault(table, []).append((key, target))
        meta = {
            "batch_id": batch_id,
            "keys": keys,
            "tables": {t: [[k, p.name] for k, p in items] for t, items in tables.items()},
            "sizes": {k: list(sizes.get(k, (0, 0))) for k in keys},
        }
        tmp = directory / "meta.tmp"
        with open(tmp, "w") as fh:
            json.dump(meta, fh)
            if self.fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, directory / "meta.json")
        if self.fsync:
            _fsync_dir(directory)
            _fsync_dir(self.batches_dir)
        return JournalBatch(batch_id, directory, keys, tables, {k: sizes.get(k, (0, 0)) for k in keys})

    def pending(self) -> list[JournalBatch]:
        """Batches made but not completed, oldest first; unacknowledged debris is removed."""
        for p in self.spool_dir.iterdir():
            p.unlink(missing_ok=True)
        out = []
        for directory in sorted(p for p in self.batches_dir.iterdir() if p.is_dir()):
            meta_path = directory / "meta.json"
            if not meta_path.exists():
                shutil.rmtree(directory, ignore_errors=True)
                continue
            meta = json.loads(meta_path.read_text())
            tables = {t: [(k, directory / name) for k, name in items] for t, items in meta["tables"].items()}
            sizes = {k: (int(v[0]), int(v[1])) for k, v in meta.get("sizes", {}).items()}
            if not sizes:  # a batch journaled before sizes were recorded: measure its files
                sizes = {k: (0, 0) for k in meta["keys"]}
                for items in tables.values():
                    for k, path in items:
                        sizes[k] = (0, sizes[k][1] + path.stat().st_size)
            out.append(JournalBatch(meta["batch_id"], directory, list(meta["keys"]), tables, sizes))
        return out

    def complete(self, batch: JournalBatch, committed_keys: Iterable[str]) -> None:
        """Record the batch's requests as committed, then forget its rows."""
        lines = "".join(f"{k}\n" for k in committed_keys)
        if lines:
            with open(self.keys_path, "a") as fh:
                fh.write(lines)
            self._keys_written += lines.count("\n")
            if self._keys_written > 2 * self.max_keys:
                self._compact_keys()
        shutil.rmtree(batch.directory, ignore_errors=True)

    def quarantine(self, batch: JournalBatch, refused: dict[str, str]) -> Path:
        """Move the files of refused requests out of the batch, with ClickHouse's reasons."""
        target = self.quarantine_dir / batch.batch_id
        target.mkdir(parents=True, exist_ok=True)
        for items in batch.tables.values():
            for key, path in items:
                if key in refused and path.exists():
                    os.rename(path, target / path.name)
        (target / "reasons.json").write_text(json.dumps(refused, indent=1))
        if self.fsync:
            _fsync_dir(target)
            _fsync_dir(self.quarantine_dir)
        return target

    @staticmethod
    def discard(files: dict[str, str]) -> None:
        """Delete the spool files of a request that will not be inserted."""
        for path in files.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

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
        self._keys_written = len(keys)
        return keys

    def _compact_keys(self) -> None:
        keys = list(self.recent_keys())
        tmp = self.keys_path.with_suffix(".tmp")
        tmp.write_text("".join(f"{k}\n" for k in keys))
        os.replace(tmp, self.keys_path)
        self._keys_written = len(keys)

    def close(self) -> None:
        os.close(self._lock_fd)
