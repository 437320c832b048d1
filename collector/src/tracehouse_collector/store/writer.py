"""The batch writer: group commit of concurrent exports into few, large inserts.

Each export's encoded rows join the pending batch and the export waits on a future that the
flush containing its rows resolves, so success is answered only once the rows are inserted.
A flush happens when `batch_rows` rows are pending, when the oldest has waited `max_delay_s`,
or as soon as no further export is on its way (none is being decoded): waiting longer would
then only add latency, since every exporter in flight is already waiting for this flush.

Backpressure, in OTLP terms:
- more than `max_pending_rows` accepted but not inserted: refuse new exports (Overloaded ->
  RESOURCE_EXHAUSTED / 429 with a retry delay);
- an export not inserted within `ack_timeout_s` (store slow or down): answer Unavailable
  (UNAVAILABLE / 503). Its rows stay queued; a retry of the same request waits for them.

Nothing is dropped silently: rows leave the queue only by being inserted, or by being refused
by ClickHouse as invalid, in which case their export gets that error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass

from tracehouse_collector.processors.pipeline import INSERT_FORMAT, EncodedRequest
from tracehouse_collector.store.client import Store, StoreError, StoreUnavailableError
from tracehouse_collector.store.journal import Journal, JournalBatch

log = logging.getLogger("tracehouse.writer")


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


class Writer:
    def __init__(
        self,
        store: Store,
        journal: Journal,
        *,
        batch_rows: int = 20_000,
        max_delay_s: float = 0.2,
        max_pending_rows: int = 400_000,
        ack_timeout_s: float = 8.0,
        close_timeout_s: float = 15.0,
    ) -> None:
        self.store = store
        self.journal = journal
        self.batch_rows = batch_rows
        self.max_delay_s = max_delay_s
        self.max_pending_rows = max_pending_rows
        self.ack_timeout_s = ack_timeout_s
        self.close_timeout_s = close_timeout_s
        self._closing_since = 0.0
        self.stats = WriterStats()
        self.store_error: str = ""
        self._pending: list[EncodedRequest] = []
        self._pending_rows = 0  # rows waiting for the next flush
        self._queued_rows = 0  # rows accepted and not yet inserted (pending + flushing)
        self._oldest = 0.0
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self._committed: OrderedDict[str, None] = OrderedDict()
        self._arriving = 0  # exports being decoded, whose rows will join the pending batch
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Replay what a previous run left in the journal, then start flushing."""
        self._committed = await asyncio.to_thread(self.journal.recent_keys)
        for batch in await asyncio.to_thread(self.journal.pending):
            log.info("replaying journaled batch %s (%d requests)", batch.batch_id, len(batch.keys))
            await self._insert_until_done(batch)
        self._task = asyncio.create_task(self._flusher(), name="tracehouse-writer")

    async def close(self) -> None:
        """Flush everything accepted, then stop."""
        self._closing = True
        self._closing_since = asyncio.get_running_loop().time()
        self._wake.set()
        if self._task:
            await self._task

    # -- submission -------------------------------------------------------------------------

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    def arriving(self, delta: int) -> None:
        """Count exports on their way (decoding); the receivers call this around decoding."""
        self._arriving += delta
        if self._arriving == 0 and self._pending:
            self._wake.set()

    async def submit(self, req: EncodedRequest) -> None:
        """Return once the request's rows are inserted; raise Overloaded/Unavailable/RowsRefused."""
        self.stats.requests += 1
        if req.rows == 0:
            return
        if req.key in self._committed:
            self.stats.duplicates += 1
            self.journal.discard(req.files)
            return
        fut = self._inflight.get(req.key)
        if fut is None:
            if self._closing:
                self.journal.discard(req.files)
                raise Unavailable("collector is shutting down", 1.0)
            if self._queued_rows + req.rows > self.max_pending_rows and self._queued_rows > 0:
                self.stats.refused_overload += 1
                self.journal.discard(req.files)
                raise Overloaded(
                    f"{self._queued_rows} rows are waiting to be written; retry later",
                    self._retry_after(),
                )
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            self._inflight[req.key] = fut
            if not self._pending:
                self._oldest = loop.time()
                self._wake.set()  # the flusher sleeps while nothing is pending
            self._pending.append(req)
            self._pending_rows += req.rows
            self._queued_rows += req.rows
            if self._pending_rows >= self.batch_rows:
                self._wake.set()
        else:
            # The same request is already queued (an exporter retried before we answered).
            self.stats.duplicates += 1
            self.journal.discard(req.files)
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.ack_timeout_s)
        except TimeoutError:
            reason = f": {self.store_error}" if self.store_error else ""
            raise Unavailable(f"rows not yet written after {self.ack_timeout_s:.0f}s{reason}", 2.0) from None

    def _retry_after(self) -> float:
        # Roughly the time the queue needs to drain at one batch per flush.
        return max(1.0, min(30.0, self._queued_rows / max(self.batch_rows, 1) * 0.5))

    # -- flushing ---------------------------------------------------------------------------

    async def _flusher(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = self._oldest + self.max_delay_s - loop.time()
            more_coming = self._arriving > 0
            if self._pending_rows < self.batch_rows and wait > 0 and more_coming and not self._closing:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            items, self._pending, self._pending_rows = self._pending, [], 0
            try:
                await self._flush(items)
            except Exception as exc:  # keep the writer alive whatever happens to one batch
                if not isinstance(exc, Unavailable):
                    log.exception("flush failed")
                    # A full disk or similar: the exporter should try again later.
                    exc = Unavailable(f"could not write the batch: {exc}", 5.0)
                for req in items:
                    self._settle(req, exc)

    async def _flush(self, items: list[EncodedRequest]) -> None:
        batch_id = self.journal.new_batch_id()
        batch = await asyncio.to_thread(self.journal.write, batch_id, [(r.key, r.files) for r in items])
        refused = await self._insert_until_done(batch)
        self.stats.batches += 1
        for req in items:
            self._settle(req, RowsRefused(refused[req.key]) if req.key in refused else None)

    def _settle(self, req: EncodedRequest, error: BaseException | None) -> None:
        self._queued_rows -= req.rows
        fut = self._inflight.pop(req.key, None)
        if error is None:
            self.stats.rows_inserted += req.rows
            self._remember(req.key)
        if fut is not None and not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)

    def _remember(self, key: str) -> None:
        self._committed[key] = None
        if len(self._committed) > self.journal.max_keys:
            self._committed.popitem(last=False)

    async def _insert_until_done(self, batch: JournalBatch) -> dict[str, str]:
        """Insert a journaled batch, retrying while the store is unavailable.

        Returns {request key: error} for requests whose rows ClickHouse refused as invalid.
        """
        attempt = 0
        while True:
            try:
                refused = await asyncio.to_thread(self._insert_batch, batch)
                break
            except StoreUnavailableError as exc:
                if self._closing and asyncio.get_running_loop().time() - self._closing_since > self.close_timeout_s:
                    # Shutting down with the store away: the batch stays in the journal and is
                    # written at the next start; its exporters get a retryable error meanwhile.
                    log.error("store unavailable at shutdown; batch %s left in the journal", batch.batch_id)
                    raise Unavailable(f"store unavailable ({exc}); rows kept for the next start", 5.0) from exc
                attempt += 1
                self.stats.store_errors += 1
                self.store_error = str(exc)
                delay = min(5.0, 0.05 * 2**attempt)
                log.warning("store unavailable (attempt %d), retrying in %.2fs: %s", attempt, delay, exc)
                await asyncio.sleep(delay)
        self.store_error = ""
        committed = [k for k in batch.keys if k not in refused]
        await asyncio.to_thread(self.journal.complete, batch, committed)
        for key in committed:
            self._remember(key)
        return refused

    def _insert_batch(self, batch: JournalBatch) -> dict[str, str]:
        refused: dict[str, str] = {}
        for table, files in batch.tables.items():
            try:
                self.store.insert_files(table, batch.pattern(table), INSERT_FORMAT, f"{batch.batch_id}:{table}")
            except StoreUnavailableError:
                raise
            except StoreError as exc:
                # Some request's rows are not insertable: insert request by request so the
                # others still land, and tell the culprit why.
                log.warning("batch %s refused by %s (%s); inserting request by request", batch.batch_id, table, exc)
                for i, (key, path) in enumerate(files):
                    try:
                        self.store.insert_files(table, str(path), INSERT_FORMAT, f"{batch.batch_id}:{table}:{i}")
                    except StoreUnavailableError:
                        raise
                    except StoreError as exc2:
                        refused[key] = f"rows refused by the store: {exc2}"
        return refused
