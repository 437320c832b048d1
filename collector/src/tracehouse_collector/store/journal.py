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
- ``batches/<group id>.group.json``: batches the writer merged into one insert (see
  Journal.merge), naming its members in order. Written before that insert is first tried, so a
  restart re-inserts the same members together, with the group's deduplication token.
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

GROUP_SUFFIX = ".group.json"


class JournalLockedError(Exception):
    pass


@dataclass
class JournalBatch:
    batch_id: str
    directory: Path
    keys: list[str]
    tables: dict[str, list[tuple[str, Path]]]  # table -> [(request key, file)] in order
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # request key -> (rows, bytes)
    members: list[str] = field(default_factory=list)  # a merged group: its batches' ids, in order

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
        # A group's files lie in its members' directories: one brace alternative each.
        where = f"{{{','.join(self.members)}}}" if self.members else ""
        return {ext: str(self.directory / where / f"*.{table}.{ext}") for ext in exts}

    def member_dirs(self) -> list[Path]:
        return [self.directory / m for m in self.members] if self.members else [self.directory]


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
        out: list[JournalBatch] = []
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
        return self._regroup(out)

    def _regroup(self, batches: list[JournalBatch]) -> list[JournalBatch]:
        """Put merged batches back into their groups, each at its first member's place.

        A group whose members are partly gone was inserted and was being completed when the
        collector stopped: the rest goes in again under the group's token, which the store
        deduplicates."""
        for debris in self.batches_dir.glob("*.group.tmp"):  # a merge that never happened
            debris.unlink(missing_ok=True)
        by_id = {b.batch_id: b for b in batches}
        group_of: dict[str, JournalBatch] = {}
        for path in sorted(self.batches_dir.glob("*" + GROUP_SUFFIX)):
            members = [by_id[m] for m in json.loads(path.read_text())["members"] if m in by_id]
            if not members:
                path.unlink(missing_ok=True)  # completed
                continue
            group = self._group(path.name.removesuffix(GROUP_SUFFIX), members)
            for m in members:
                group_of[m.batch_id] = group
        out: list[JournalBatch] = []
        for b in batches:
            member_of = group_of.get(b.batch_id)
            if member_of is None:
                out.append(b)
            elif member_of.members[0] == b.batch_id:
                out.append(member_of)
        return out

    def _group(self, group_id: str, batches: list[JournalBatch]) -> JournalBatch:
        tables: dict[str, list[tuple[str, Path]]] = {}
        for b in batches:
            for table, items in b.tables.items():
                tables.setdefault(table, []).extend(items)
        return JournalBatch(
            group_id,
            self.batches_dir,
            [k for b in batches for k in b.keys],
            tables,
            {k: v for b in batches for k, v in b.sizes.items()},
            [b.batch_id for b in batches],
        )

    def merge(self, batches: list[JournalBatch]) -> JournalBatch:
        """Join queued batches into one group, inserted as one (fewer, larger inserts cost
        ClickHouse far less per row). The group is recorded, durably, before its first insert:
        a replay inserts exactly these batches again, with the same deduplication token.
        Only batches never tried on their own may be merged (see Writer)."""
        group_id = self.new_batch_id()
        path = self.batches_dir / f"{group_id}{GROUP_SUFFIX}"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            json.dump({"batch_id": group_id, "members": [b.batch_id for b in batches]}, fh)
            if self.fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if self.fsync:
            _fsync_dir(self.batches_dir)
        return self._group(group_id, batches)

    def complete(self, batch: JournalBatch, committed_keys: Iterable[str]) -> None:
        """Record the batch's requests as committed, then forget its rows."""
        lines = "".join(f"{k}\n" for k in committed_keys)
        if lines:
            with open(self.keys_path, "a") as fh:
                fh.write(lines)
            self._keys_written += lines.count("\n")
            if self._keys_written > 2 * self.max_keys:
                self._compact_keys()
        for directory in batch.member_dirs():
            shutil.rmtree(directory, ignore_errors=True)
        if batch.members:  # last: while a member is left, the group must be replayed as one
            (self.batches_dir / f"{batch.batch_id}{GROUP_SUFFIX}").unlink(missing_ok=True)

    def quarantine(self, batch: JournalBatch, refused: dict[str, str]) -> Path:
        """Move the files of refused requests out of the batch, with ClickHouse's reasons."""
        target = self.quarantine_dir / batch.batch_id
        target.mkdir(parents=True, exist_ok=True)
        for items in batch.tables.values():
            for key, path in items:
                if key in refused and path.exists():
                    # a group's members number their files alike: keep the member's id
                    name = f"{path.parent.name}.{path.name}" if batch.members else path.name
                    os.rename(path, target / name)
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
