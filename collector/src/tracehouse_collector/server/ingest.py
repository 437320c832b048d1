"""The front door shared by the OTLP receivers: decode in worker processes, then commit.

Receivers hand over raw request bytes and get back either the outcome (rows accepted,
rows rejected) or one of the exceptions below, which each receiver maps to its protocol's
status codes.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial

from tracehouse_collector.config import ServeSettings
from tracehouse_collector.processors import encoding, pipeline
from tracehouse_collector.processors.otlp_decode import InvalidRequest, RequestTooLarge
from tracehouse_collector.server import memory
from tracehouse_collector.server.inflight import ByteBudget, Reservation
from tracehouse_collector.store.writer import Overloaded, RowsRefused, Unavailable, Writer

log = logging.getLogger("tracehouse.ingest")

__all__ = ["Ingest", "InvalidRequest", "RequestTooLarge", "Overloaded", "Unavailable", "RowsRefused"]


def _warm_up(prices_path: str | None, insert_format: str = "json") -> None:
    """Import the heavy modules and load prices once per worker, not on its first request."""
    pipeline.pricer(prices_path)
    encoding.warm_up(insert_format)


class Ingest:
    def __init__(self, settings: ServeSettings, writer: Writer) -> None:
        self.settings = settings
        self.writer = writer
        self.accepting = False
        self._decoding_bytes = 0
        # Request bodies held by this process (see inflight.py); memory goes back after spikes.
        self.trimmer = memory.Trimmer()
        self.budget = ByteBudget(settings.max_inflight_bytes, self.trimmer.released)
        self._pool: Executor | None = None
        self._new_pool()

    def _new_pool(self) -> None:
        if self.settings.workers <= 0:
            self._pool = None  # decode on a thread of this process (tests, tiny deployments)
            return
        # spawn, not fork: the parent holds chDB's threads and gRPC's, which fork cannot copy.
        self._pool = ProcessPoolExecutor(
            max_workers=self.settings.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_warm_up,
            initargs=(self.settings.prices, self.settings.insert_format),
        )

    def reserve(self, size: int) -> Reservation:
        """Bytes for a request about to be read; raises Overloaded when they are not there.

        The receiver releases it when its answer is sent: until then it holds the body.
        """
        if not self.accepting:
            raise Unavailable("collector is not accepting data (starting or shutting down)", 1.0)
        reservation = self.budget.reserve(size)
        if reservation is None:
            raise Overloaded(
                f"{self.budget.used} bytes of requests are in flight (limit {self.budget.limit}, "
                "TRACEHOUSE_MAX_INFLIGHT_BYTES); retry later",
                1.0,
            )
        return reservation

    async def export(
        self,
        signal: str,
        body: bytes,
        content_type: str,
        content_encoding: str = "",
    ) -> pipeline.EncodedRequest:
        if not self.accepting:
            raise Unavailable("collector is not accepting data (starting or shutting down)", 1.0)
        if self._decoding_bytes and self._decoding_bytes + len(body) > self.settings.max_decoding_bytes:
            raise Overloaded(f"{self._decoding_bytes} bytes of requests are being decoded; retry later", 1.0)
        job = partial(
            pipeline.process,
            signal,
            body,
            content_type,
            content_encoding,
            self.settings.max_request_bytes,
            self.settings.max_attribute_bytes,
            str(self.writer.journal.spool_dir),
            self.writer.journal.fsync,
            self.settings.prices,
            self.settings.llm_processor,
            self.settings.insert_format,
        )
        loop = asyncio.get_running_loop()
        self.writer.arriving(+1)
        self._decoding_bytes += len(body)
        try:
            if self._pool is None:
                encoded = await asyncio.to_thread(job)
            else:
                encoded = await loop.run_in_executor(self._pool, job)
        except BrokenProcessPool:
            log.error("a decoding worker died; starting a new pool")
            self._new_pool()
            raise Unavailable("decoding worker restarted; retry", 1.0) from None
        except OSError as exc:  # the spool disk is full or failing: not accepted, retryable
            log.error("cannot spool a %s request: %s", signal, exc)
            raise Unavailable(f"cannot queue the request on disk: {exc}", 5.0) from None
        finally:
            self._decoding_bytes -= len(body)
            self.writer.arriving(-1)
        # No await between arriving(-1) and submit: the rows join the batch before a flush starts.
        await self.writer.submit(encoded)
        return encoded

    def close(self) -> None:
        self.accepting = False
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
