"""The batch writer: group commit into few, large inserts, through a bounded on-disk queue.

Two tasks share the work:
- the *sealer* turns pending exports into journal batches (spool files renamed into a batch
  directory, meta written, files and directories fsync'd): from then on a batch is in the
  on-disk queue and survives kill -9 and power loss;
- the *drainer* inserts queued batches, oldest first, each with its own deduplication token,
  backing off while the store is unavailable.

Under load the two overlap: while an insert runs, what arrives is sealed into the queue once it
is a worthwhile share of an insert (a sixteenth of `batch_rows`, waited `max_delay_s`) and is
acknowledged then, durably queued; the drainer merges the batches queued meanwhile into its
next insert, up to `max_insert_rows` / `max_insert_bytes`. ClickHouse pays ~0.1 CPU-s per insert
(parts of the table and of each materialized view) plus a cost per row, so at 30k spans/s
inserts of a few thousand rows would spend more on that fixed cost than on the rows. A merge
is recorded in the journal before its first insert (Journal.merge), so a replay re-inserts the
same batches together under the same deduplication token. A lone exporter is unaffected: its
export is sealed as soon as it arrives and answered once inserted.

When an export is acknowledged:
- store healthy: once its rows are inserted (group commit: the export waits for the flush that
  contains its rows). An acknowledgement then means "queryable", a row ClickHouse refuses is
  reported to its exporter, and exporters are paced by the store, so batches stay large;
- store failing, slow (an insert running longer than `slow_insert_s`) or a backlog queued:
  once its batch is durably in the queue. The collector keeps accepting while the store is
  away, up to `max_queue_bytes` of queued rows; rows stay on disk, not in memory.
Either way nothing acknowledged is lost: it is inserted or in the queue, which a restart replays.

Backpressure, in OTLP terms:
- the queue would exceed `max_queue_bytes` or `max_queued_requests`, or more than
  `max_pending_rows` wait to be sealed: refuse new exports (Overloaded -> RESOURCE_EXHAUSTED / 429 with a retry delay);
- an export neither inserted nor queued within `ack_timeout_s` (the disk is failing):
  Unavailable (UNAVAILABLE / 503). A retry of the same request waits for the first attempt.

Exactly once: a request key is "accepted" from submit until its batch is inserted (a retry
waits for, or is answered from, the first attempt), then "committed" (remembered in the
journal's key log). Batches keep their id across restarts, so a replayed batch carries the
same deduplication token and ClickHouse drops what the first attempt already stored.

A batch that ClickHouse refuses as invalid data is inserted request by request; the culprits
are moved to the journal's quarantine with the reason, so one bad request cannot block the
queue. Other permanent errors (authentication, a missing table) are treated as "store
unavailable": the queue waits for the operator rather than throwing acknowledged rows away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from tracehouse_collector.processors.encoding import insert_format
from tracehouse_collector.processors.pipeline import EncodedRequest
from tracehouse_collector.store.client import Store, StoreError, StoreUnavailableError
from tracehouse_collector.store.journal import Journal, JournalBatch

log = logging.getLogger("tracehouse.writer")

# ClickHouse error codes that blame the rows sent, not the server: parse errors, type errors,
# values out of range. Only these split a batch and quarantine requests.
DATA_ERROR_CODES = frozenset({6, 16, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 131, 349})
_CODE = re.compile(r"Code: (\d+)")


def is_data_error(exc: BaseException) -> bool:
    match = _CODE.search(str(exc))
    return match is not None and int(match.group(1)) in DATA_ERROR_CODES


class Overloaded(Exception):
    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(Exception):
    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RowsRefused(Exception):
    """ClickHouse refused this request's rows as invalid; retrying will not help."""


@dataclass
class WriterStats:
    requests: int = 0
    rows_inserted: int = 0
    duplicates: int = 0
    batches: int = 0
    refused_overload: int = 0
    store_errors: int = 0
    acked_from_queue: int = 0  # acknowledged once durably queued, before their insert
    quarantined: int = 0  # requests whose rows ClickHouse refused


def _spool_bytes(files: dict[str, str]) -> int:
    total = 0
    for path in files.values():
        with contextlib.suppress(OSError):
            total += os.path.getsize(path)
    return total


class Writer:
    def __init__(
        self,
        store: Store,
        journal: Journal,
        *,
        batch_rows: int = 20_000,
        max_delay_s: float = 0.2,
        max_pending_rows: int = 400_000,
        max_insert_rows: int = 100_000,
        max_insert_bytes: int = 96 << 20,
        max_queue_bytes: int = 1 << 30,
        max_queued_requests: int = 200_000,
        ack_timeout_s: float = 8.0,
        slow_insert_s: float = 6.0,
        max_backoff_s: float = 5.0,
        close_timeout_s: float = 15.0,
        replay_wait_s: float = 30.0,
        prepare: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.journal = journal
        self.batch_rows = batch_rows
        self.max_delay_s = max_delay_s
        self.max_pending_rows = max_pending_rows
        # Merging queued batches into one insert; at most batch_rows: off (one insert per
        # batch, sealed only when the drainer is idle, as before merging existed).
        self.max_insert_rows = max_insert_rows
        self.max_insert_bytes = max_insert_bytes
        self.max_queue_bytes = max_queue_bytes
        self.max_queued_requests = max_queued_requests
        self.ack_timeout_s = ack_timeout_s
        self.slow_insert_s = slow_insert_s
        self.max_backoff_s = max_backoff_s
        self.close_timeout_s = close_timeout_s
        self.replay_wait_s = replay_wait_s
        # Connects and migrates a store that was unreachable at start; None once done.
        self._prepare = prepare
        self.stats = WriterStats()
        self.store_error: str = ""  # the last insert error while the store is failing
        self._slow = False  # the current insert has run longer than slow_insert_s
        # Accepted, not yet sealed into a batch (their rows are in spool files).
        self._pending: list[EncodedRequest] = []
        self._pending_rows = 0
        self._pending_sizes: dict[str, tuple[int, int]] = {}
        self._oldest = 0.0
        # Sealed batches waiting for the drainer, oldest first, and the one being inserted.
        self._queue: deque[JournalBatch] = deque()
        self._current: JournalBatch | None = None
        # Batches that may have reached the store on their own (replayed from a previous run,
        # or inserted and then not completed): merged, they would be inserted twice.
        self._unmergeable: set[str] = set()
        self._merging: list[JournalBatch] = []  # taken from the queue, being merged
        self._queued_rows = 0  # rows accepted and not yet inserted (pending + queued)
        self._queued_bytes = 0
        # Request key -> the future its exporters wait on, from submit until inserted.
        self._accepted: dict[str, asyncio.Future[None]] = {}
        self._committed: OrderedDict[str, None] = OrderedDict()
        self._arriving = 0  # exports being decoded, whose rows will join the pending batch
        self._wake_sealer = asyncio.Event()
        self._wake_drainer = asyncio.Event()
        self._drained = asyncio.Event()  # the queue is empty or the store is failing
        self._closing = False
        self._closing_since = 0.0
        self._sealer_task: asyncio.Task[None] | None = None
        self._drainer_task: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Load what a previous run left in the queue and start draining it.

        Waits until the replay is done or the store turns out to be failing: with a healthy
        store, what was acknowledged before a crash is queryable as soon as we serve again;
        with a failing one, we serve anyway and the queue drains when the store returns.
        """
        self._committed = await asyncio.to_thread(self.journal.recent_keys)
        if self._prepare is not None:
            self.store_error = "not connected to the store yet"  # acknowledge from the queue at once
        loop = asyncio.get_running_loop()
        for batch in await asyncio.to_thread(self.journal.pending):
            self._queue.append(batch)
            self._unmergeable.add(batch.batch_id)
            self._queued_rows += batch.rows
            self._queued_bytes += batch.nbytes
            for key in batch.keys:  # acknowledged (or never answered): a retry is answered at once
                done = loop.create_future()
                done.set_result(None)
                self._accepted[key] = done
        if self._queue:
            log.info("replaying %d queued batches (%d bytes)", len(self._queue), self._queued_bytes)
        self._sealer_task = asyncio.create_task(self._sealer(), name="tracehouse-sealer")
        self._drainer_task = asyncio.create_task(self._drainer(), name="tracehouse-drainer")
        if self._queue and self._prepare is None:
            # Bounded: a large backlog finishes draining while we serve.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), self.replay_wait_s)

    async def close(self) -> None:
        """Seal what is pending, insert what the store takes within close_timeout_s, then stop.

        Whatever is left stays in the queue for the next start.
        """
        self._closing = True
        self._closing_since = asyncio.get_running_loop().time()
        self._wake_sealer.set()
        if self._sealer_task:
            await self._sealer_task
        self._wake_drainer.set()
        if self._drainer_task:
            await self._drainer_task

    # -- state ------------------------------------------------------------------------------

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    @property
    def degraded(self) -> bool:
        """The store is failing or slow: exports are acknowledged from the queue."""
        return bool(self.store_error) or self._slow

    def queue_status(self) -> dict:
        current = self._merging or ([self._current] if self._current else [])
        batches = list(self._queue) + current
        return {
            "batches": len(batches),
            "requests": sum(len(b.keys) for b in batches),
            "rows": self._queued_rows,
            "bytes": self._queued_bytes,
            "max_bytes": self.max_queue_bytes,
            "pending_requests": len(self._pending),
        }

    def store_status(self) -> str:
        return "failing" if self.store_error else "slow" if self._slow else "ok"

    # -- submission -------------------------------------------------------------------------

    def arriving(self, delta: int) -> None:
        """Count exports on their way (decoding); the receivers call this around decoding."""
        self._arriving += delta
        if self._arriving == 0 and self._pending:
            self._wake_sealer.set()

    async def submit(self, req: EncodedRequest) -> None:
        """Return once the request is inserted or durably queued; raise Overloaded/Unavailable/RowsRefused."""
        self.stats.requests += 1
        if req.rows == 0:
            return
        if req.key in self._committed:
            self.stats.duplicates += 1
            self.journal.discard(req.files)
            return
        fut = self._accepted.get(req.key)
        if fut is None:
            if self._closing:
                self.journal.discard(req.files)
                raise Unavailable("collector is shutting down", 1.0)
            nbytes = _spool_bytes(req.files)
            full = self._queued_bytes > 0 and self._queued_bytes + nbytes > self.max_queue_bytes
            # Each queued request costs about 0.8 KB of memory (key, paths, future): with tiny
            # requests the count, not the bytes, is what bounds memory.
            full = full or len(self._accepted) >= self.max_queued_requests
            if full or (self._pending_rows > 0 and self._pending_rows + req.rows > self.max_pending_rows):
                self.stats.refused_overload += 1
                self.journal.discard(req.files)
                what = (
                    f"{self._queued_bytes} bytes in {len(self._accepted)} requests"
                    if full
                    else f"{self._pending_rows} rows"
                )
                raise Overloaded(
                    f"the write queue is full ({what} waiting); retry later", self._retry_after()
                )
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            self._accepted[req.key] = fut
            if not self._pending:
                self._oldest = loop.time()
            self._pending.append(req)
            self._pending_rows += req.rows
            self._pending_sizes[req.key] = (req.rows, nbytes)
            self._queued_rows += req.rows
            self._queued_bytes += nbytes
            self._wake_sealer.set()
        else:
            # The same request is already accepted (an exporter retried before, or after, we
            # answered): answer it like the first attempt, without storing it twice.
            self.stats.duplicates += 1
            self.journal.discard(req.files)
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.ack_timeout_s)
        except TimeoutError:
            log.warning(
                "export not queued after %.0fs (store %s, %d pending, %d batches queued, inserting %s)",
                self.ack_timeout_s,
                self.store_status(),
                len(self._pending),
                len(self._queue),
                self._current.batch_id if self._current else None,
            )
            reason = f": {self.store_error}" if self.store_error else ""
            raise Unavailable(f"rows not yet written after {self.ack_timeout_s:.0f}s{reason}", 2.0) from None

    def _retry_after(self) -> float:
        if self.degraded:
            return self.max_backoff_s  # the store is away: about when the next insert attempt is
        # Roughly the time the queue needs to drain at one batch per flush.
        return max(1.0, min(30.0, self._queued_rows / max(self.batch_rows, 1) * 0.5))

    # -- sealing ----------------------------------------------------------------------------

    @property
    def merging(self) -> bool:
        return self.max_insert_rows > self.batch_rows

    def _busy_seal_wait(self, now: float) -> float | None:
        """While an insert runs: 0 to seal the pending exports now (queued, acknowledged and
        merged into the next insert), seconds until that is due, or None (wait for more)."""
        if not self.merging or self._pending_rows < self.batch_rows // 16:
            return None
        if self._pending_rows >= self.batch_rows:
            return 0.0
        return max(0.0, self._oldest + self.max_delay_s - now)

    async def _wait(self, event: asyncio.Event, timeout: float | None = None) -> None:
        event.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    async def _sealer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                await self._wait(self._wake_sealer)
                continue
            # With a healthy store, seal only when the drainer is idle: exporters wait for the
            # insert anyway, and what piles up meanwhile makes the next insert larger.
            # A backlog (batches queued behind the one being inserted, e.g. after an outage) is
            # drained in order; meanwhile new exports are answered once queued, not after it.
            backlog = bool(self._queue) and self._current is not None
            ack_from_queue = self.degraded or backlog or self._closing
            drainer_idle = self._current is None and not self._queue
            if not (ack_from_queue or drainer_idle):
                busy_wait = self._busy_seal_wait(loop.time())
                if busy_wait != 0.0:
                    await self._wait(self._wake_sealer, busy_wait)
                    continue
                ack_from_queue = True  # sealed behind the running insert, as a backlog is
            wait = self._oldest + self.max_delay_s - loop.time()
            if self._pending_rows < self.batch_rows and wait > 0 and self._arriving > 0 and not self._closing:
                await self._wait(self._wake_sealer, wait)
                continue
            items, self._pending, self._pending_rows = self._pending, [], 0
            sizes = {r.key: self._pending_sizes.pop(r.key) for r in items}
            batch_id = self.journal.new_batch_id()
            try:
                batch = await asyncio.to_thread(
                    self.journal.write, batch_id, [(r.key, r.files) for r in items], sizes
                )
            except Exception as exc:  # a full or failing disk: not accepted, the exporters retry
                log.exception("could not queue batch %s", batch_id)
                for r in items:
                    self.journal.discard(r.files)
                    self._forget(r.key, sizes[r.key], Unavailable(f"could not queue the rows: {exc}", 5.0))
                continue
            self._queue.append(batch)
            if ack_from_queue or self.degraded:
                self._ack_from_queue([batch])
            self._wake_drainer.set()

    def _ack_from_queue(self, batches: list[JournalBatch]) -> None:
        """Answer the exporters of durably queued batches now, before their insert."""
        for batch in batches:
            for key in batch.keys:
                fut = self._accepted.get(key)
                if fut is not None and not fut.done():
                    fut.set_result(None)
                    self.stats.acked_from_queue += 1

    def _set_degraded(self, store_error: str | None = None, slow: bool | None = None) -> None:
        was = self.degraded
        if store_error is not None:
            self.store_error = store_error
        if slow is not None:
            self._slow = slow
        if self.degraded and not was:
            log.warning("store %s; acknowledging exports once queued on disk", self.store_status())
            self._ack_from_queue(list(self._queue) + ([self._current] if self._current else []))
            self._drained.set()
            self._wake_sealer.set()
        elif was and not self.degraded:
            log.info("store is back; draining %d queued batches", len(self._queue))

    def _forget(self, key: str, size: tuple[int, int], error: BaseException | None) -> None:
        """The request left the queue: inserted (error None), refused or not queued."""
        rows, nbytes = size
        self._queued_rows -= rows
        self._queued_bytes -= nbytes
        fut = self._accepted.pop(key, None)
        if error is None:
            self.stats.rows_inserted += rows
            self._remember(key)
        if fut is not None and not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)
                fut.exception()  # nobody may be waiting any more; don't log it as unretrieved

    def _remember(self, key: str) -> None:
        self._committed[key] = None
        if len(self._committed) > self.journal.max_keys:
            self._committed.popitem(last=False)

    # -- draining ---------------------------------------------------------------------------

    async def _drainer(self) -> None:
        while True:
            if self._prepare is not None and not self._queue and not self._closing:
                # Started while the store was unreachable: connect and migrate once it answers,
                # even before any data comes, so that reads work as soon as it is back.
                await self._insert_until_done(None)
                continue
            if not self._queue:
                self._drained.set()
                self._wake_sealer.set()  # the sealer may be waiting for an idle drainer
                if self._closing and (self._sealer_task is None or self._sealer_task.done()):
                    return
                await self._wait(self._wake_drainer)
                continue
            self._drained.clear()
            batch = await self._next_insert()
            # The sealer decides from (queue, current) whether a backlog is draining: wake it
            # at every change, or an export could wait behind the whole backlog.
            self._wake_sealer.set()
            refused = await self._insert_until_done(batch)
            if refused is None:  # shutting down with the store away: leave it queued
                self._current = None
                self._queue.appendleft(batch)
                self._ack_from_queue(list(self._queue))
                return
            try:
                if refused:
                    where = await asyncio.to_thread(self.journal.quarantine, batch, refused)
                    log.error(
                        "batch %s: %d requests refused by the store, kept in %s",
                        batch.batch_id,
                        len(refused),
                        where,
                    )
                committed = [k for k in batch.keys if k not in refused]
                await asyncio.to_thread(self.journal.complete, batch, committed)
            except Exception:  # a failing disk: keep the batch; its re-insert is deduplicated
                log.exception("could not complete batch %s; retrying", batch.batch_id)
                self._unmergeable.add(batch.batch_id)  # inserted: must go in again alone
                self._current = None
                self._queue.appendleft(batch)
                await asyncio.sleep(1.0)
                continue
            self._unmergeable.discard(batch.batch_id)
            self.stats.quarantined += len(refused)
            self.stats.batches += 1
            for key in batch.keys:
                error = RowsRefused(refused[key]) if key in refused else None
                self._forget(key, batch.sizes.get(key, (0, 0)), error)
            self._current = None
            self._wake_sealer.set()

    def _mergeable(self, batch: JournalBatch) -> bool:
        return not batch.members and batch.batch_id not in self._unmergeable

    async def _next_insert(self) -> JournalBatch:
        """The oldest queued batch, merged with the mergeable batches queued behind it up to
        max_insert_rows / max_insert_bytes; it is `_current` from the moment it leaves the queue."""
        batch = self._current = self._queue.popleft()
        if not (self.merging and self._mergeable(batch)):
            return batch
        group = [batch]
        rows, nbytes = batch.rows, batch.nbytes
        while self._queue and self._mergeable(nxt := self._queue[0]):
            if rows + nxt.rows > self.max_insert_rows or nbytes + nxt.nbytes > self.max_insert_bytes:
                break
            group.append(self._queue.popleft())
            rows += nxt.rows
            nbytes += nxt.nbytes
        if len(group) == 1:
            return batch
        self._merging = group  # still counted (queue_status) while the merge is recorded
        try:
            self._current = await asyncio.to_thread(self.journal.merge, group)
            return self._current
        except Exception:  # a failing disk: insert them one by one, as queued
            log.exception("could not record the merge of %d batches; inserting them one by one", len(group))
            self._queue.extendleft(reversed(group[1:]))
            return batch
        finally:
            self._merging = []

    async def _insert_until_done(self, batch: JournalBatch | None) -> dict[str, str] | None:
        """Insert a queued batch (None: only get the store ready), retrying while the store is
        unavailable.

        Returns {request key: error} for requests whose rows ClickHouse refused as invalid,
        or None when shutting down with the store still away.
        """
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            task = asyncio.ensure_future(asyncio.to_thread(self._prepare_and_insert, batch))
            try:
                done, _ = await asyncio.wait({task}, timeout=self.slow_insert_s)
                if not done:
                    self._set_degraded(slow=True)
                refused = await task
            except Exception as exc:  # StoreUnavailableError, or anything unexpected (disk)
                if not isinstance(exc, StoreUnavailableError):
                    log.exception("writing to the store failed")
                # Shutting down: a store that was already failing is not waited for (the
                # queue is on disk); a healthy one gets close_timeout_s to take the rest.
                if self._closing and (
                    batch is None or self.degraded or loop.time() - self._closing_since > self.close_timeout_s
                ):
                    if batch is not None:
                        log.error(
                            "store unavailable at shutdown; %d batches stay queued", len(self._queue) + 1
                        )
                    return None
                attempt += 1
                self.stats.store_errors += 1
                self._set_degraded(store_error=str(exc) or type(exc).__name__, slow=False)
                delay = min(self.max_backoff_s, 0.05 * 2**attempt)
                log.warning("store unavailable (attempt %d), retrying in %.2fs: %s", attempt, delay, exc)
                await asyncio.sleep(delay)
                continue
            self._set_degraded(store_error="", slow=False)
            return refused

    def _prepare_and_insert(self, batch: JournalBatch | None) -> dict[str, str]:
        if self._prepare is not None:
            self._prepare()  # raises StoreUnavailableError while the store is away
            self._prepare = None
        return {} if batch is None else self._insert_batch(batch)

    def _insert_batch(self, batch: JournalBatch) -> dict[str, str]:
        refused: dict[str, str] = {}
        for table, files in batch.tables.items():
            try:
                patterns = batch.patterns(table)
                for ext, pattern in patterns.items():
                    # One format per batch and table, except across an upgrade: then each
                    # format's files get an insert (and deduplication token) of their own.
                    token = f"{batch.batch_id}:{table}" + (f":{ext}" if len(patterns) > 1 else "")
                    self.store.insert_files(table, pattern, insert_format(pattern), token)
            except StoreUnavailableError:
                raise
            except StoreError as exc:
                if not is_data_error(exc):
                    # Not about the rows (credentials, a missing table): wait for the operator.
                    raise StoreUnavailableError(f"store refuses inserts: {exc}") from exc
                # Some request's rows are not insertable: insert request by request so the
                # others still land, and set the culprits aside.
                log.warning(
                    "batch %s refused by %s (%s); inserting request by request", batch.batch_id, table, exc
                )
                for i, (key, path) in enumerate(files):
                    if key in refused:
                        continue
                    try:
                        self.store.insert_files(
                            table, str(path), insert_format(str(path)), f"{batch.batch_id}:{table}:{i}"
                        )
                    except StoreUnavailableError:
                        raise
                    except StoreError as exc2:
                        if not is_data_error(exc2):
                            raise StoreUnavailableError(f"store refuses inserts: {exc2}") from exc2
                        refused[key] = f"rows refused by the store: {exc2}"
        return refused
