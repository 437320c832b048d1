"""The writer, the journal and the ingest front door in-process, with their failure paths.

A real `Writer` and `Journal` in the test's own event loop, writing to a ClickHouse endpoint
(`fake_clickhouse.py`, chDB in its own process) through the collector's server-store path;
requests are real OTLP encoded by the real pipeline. Faults are injected at the seams where
the disk or the store fail: each test asserts what the exporter is told and that nothing it
was told is stored goes missing or lands twice.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_clickhouse import FakeClickHouseProcess
from helpers import make_span, new_trace_id, trace_request, unique
from load import stored_span_ids
from tracehouse_collector.config import ServeSettings
from tracehouse_collector.processors import pipeline
from tracehouse_collector.server.ingest import Ingest
from tracehouse_collector.store.client import Store, StoreError
from tracehouse_collector.store.journal import Journal
from tracehouse_collector.store.writer import Unavailable, Writer

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


@pytest.fixture
def store(fake_store: FakeClickHouseProcess) -> Iterator[Store]:
    s = Store(fake_store.dsn)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal", fsync=False)
    yield j
    j.close()


def _body(service: str, n: int = 5) -> tuple[bytes, set[str]]:
    spans = [make_span(f"op-{i}", trace_id=new_trace_id()) for i in range(n)]
    return trace_request(service, spans).SerializeToString(), {s.span_id.hex() for s in spans}


def _encode(journal: Journal, body: bytes) -> pipeline.EncodedRequest:
    return pipeline.process("traces", body, "protobuf", "", 4 << 20, 4096, str(journal.spool_dir), False)


def _writer(store: Store, journal: Journal, **settings) -> Writer:
    return Writer(store, journal, max_delay_s=0.01, max_backoff_s=0.2, **settings)


def _spooled(journal: Journal) -> list[Path]:
    return list(journal.spool_dir.iterdir())


def _exactly_once(fake_store: FakeClickHouseProcess, service: str, ids: set[str]) -> None:
    assert stored_span_ids(fake_store, service) == dict.fromkeys(ids, 1)


async def _until(predicate, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


# -- the journal's disk fails ------------------------------------------------------------------


def test_a_full_disk_when_queueing_refuses_the_export_and_keeps_nothing(store, journal, fake_store):
    service = unique("disk-full")
    body, ids = _body(service)
    real_write = journal.write
    calls = []

    def full_disk(*args, **kwargs):
        calls.append(args)
        raise OSError(errno.ENOSPC, "No space left on device")

    async def scenario() -> None:
        writer = _writer(store, journal)
        await writer.start()
        try:
            journal.write = full_disk
            with pytest.raises(Unavailable, match="could not queue the rows: .*No space left") as refused:
                await writer.submit(_encode(journal, body))
            assert refused.value.retry_after_s > 0
            # Nothing of it is held: no spool file, no queue entry, no memory of its key.
            assert _spooled(journal) == [] and writer.queued_rows == 0 and writer.queued_bytes == 0
            journal.write = real_write
            await writer.submit(_encode(journal, body))  # the SDK's retry of the same export
        finally:
            await writer.close()

    asyncio.run(scenario())
    assert len(calls) == 1
    _exactly_once(fake_store, service, ids)


def test_a_failing_complete_keeps_the_batch_and_its_reinsert_is_deduplicated(store, journal, fake_store):
    service = unique("complete-fails")
    body, ids = _body(service)
    real_complete = journal.complete
    calls = []

    def complete_once_failing(batch, keys):
        calls.append(batch.batch_id)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")
        return real_complete(batch, keys)

    journal.complete = complete_once_failing

    async def scenario() -> None:
        writer = _writer(store, journal)
        await writer.start()
        try:
            await writer.submit(_encode(journal, body))  # answered once the batch is done
            assert writer.stats.rows_inserted == len(ids)
        finally:
            await writer.close()

    asyncio.run(scenario())
    assert len(calls) == 2 and calls[0] == calls[1]  # the same batch, inserted again
    _exactly_once(fake_store, service, ids)
    assert list(journal.batches_dir.iterdir()) == []
    assert len(journal.recent_keys()) == 1


def test_an_export_neither_inserted_nor_queued_in_time_is_answered_unavailable(store, journal, fake_store):
    service = unique("ack-timeout")
    body, ids = _body(service)
    release = threading.Event()
    real_write = journal.write

    def stalled_write(*args, **kwargs):
        release.wait(30)
        return real_write(*args, **kwargs)

    journal.write = stalled_write

    async def scenario() -> None:
        writer = _writer(store, journal, ack_timeout_s=1.0)
        await writer.start()
        try:
            with pytest.raises(Unavailable, match=r"rows not yet written after 1s") as late:
                await writer.submit(_encode(journal, body))
            assert late.value.retry_after_s > 0
            release.set()
            # The SDK retries: answered from the first attempt, whose rows were not dropped.
            await writer.submit(_encode(journal, body))
            await _until(lambda: writer.stats.rows_inserted == len(ids))
            assert writer.stats.duplicates == 1
        finally:
            release.set()
            await writer.close()

    asyncio.run(scenario())
    _exactly_once(fake_store, service, ids)


# -- the store refuses --------------------------------------------------------------------------


def test_a_store_refusal_not_about_the_rows_holds_the_queue_instead_of_dropping_it(store, journal, fake_store):
    """Wrong credentials, a missing table: not the data's fault, so nothing is quarantined; the
    exports are acknowledged from the on-disk queue and inserted once the store takes them."""
    service = unique("auth-refused")
    body, ids = _body(service)
    real_insert = store.insert_files
    refusing = threading.Event()
    refusing.set()

    def insert(*args, **kwargs):
        if refusing.is_set():
            raise StoreError("Code: 516. DB::Exception: default: Authentication failed. (AUTHENTICATION_FAILED)")
        return real_insert(*args, **kwargs)

    store.insert_files = insert

    async def scenario() -> None:
        writer = _writer(store, journal)
        await writer.start()
        try:
            await writer.submit(_encode(journal, body))  # acknowledged: durably queued
            assert writer.store_status() == "failing"
            assert "store refuses inserts: Code: 516" in writer.store_error
            assert writer.stats.acked_from_queue == 1 and writer.stats.quarantined == 0
            assert stored_span_ids(fake_store, service) == {}
            refusing.clear()  # the operator fixed the credentials
            await _until(lambda: writer.queue_status()["requests"] == 0)
            assert writer.store_status() == "ok"
        finally:
            await writer.close()

    asyncio.run(scenario())
    assert not journal.quarantine_dir.exists()
    _exactly_once(fake_store, service, ids)


# -- what a restart finds -------------------------------------------------------------------------


def test_a_batch_queued_by_an_older_release_without_sizes_is_replayed(store, tmp_path, fake_store):
    """Journal metadata from before sizes were recorded: the queue's size is measured from the
    files, and the batch is inserted at the next start."""
    service = unique("old-meta")
    body, ids = _body(service)
    journal = Journal(tmp_path / "old", fsync=False)
    request = _encode(journal, body)
    batch = journal.write(journal.new_batch_id(), [(request.key, request.files)], {request.key: (5, 1)})
    meta_path = batch.directory / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["sizes"]
    meta_path.write_text(json.dumps(meta))
    journal.close()

    journal = Journal(tmp_path / "old", fsync=False)
    (pending,) = journal.pending()
    file_bytes = sum(p.stat().st_size for items in pending.tables.values() for _, p in items)
    assert pending.keys == [request.key] and pending.sizes == {request.key: (0, file_bytes)}

    async def scenario() -> None:
        writer = _writer(store, journal)
        await writer.start()  # replays before serving
        try:
            assert writer.queue_status()["requests"] == 0
            await writer.submit(_encode(journal, body))  # a late retry: already committed
            assert writer.stats.duplicates == 1
        finally:
            await writer.close()

    asyncio.run(scenario())
    journal.close()
    _exactly_once(fake_store, service, ids)


def test_committed_keys_are_compacted_and_the_newest_survive_a_restart(tmp_path):
    journal = Journal(tmp_path / "keys", fsync=False, max_keys=3)
    keys = [f"key-{i}" for i in range(8)]
    for i in range(0, len(keys), 2):
        directory = journal.batches_dir / f"b{i}"
        directory.mkdir()
        batch = type("B", (), {"directory": directory})()
        journal.complete(batch, keys[i : i + 2])
        assert not directory.exists()
    # 8 keys written with room for 3: the log was rewritten (never more than 2 x max_keys lines).
    lines = journal.keys_path.read_text().split()
    assert len(lines) <= 2 * 3 and lines[-1] == "key-7"
    assert list(journal.recent_keys()) == ["key-5", "key-6", "key-7"]
    journal.close()
    reopened = Journal(tmp_path / "keys", fsync=False, max_keys=3)
    assert list(reopened.recent_keys()) == ["key-5", "key-6", "key-7"]
    reopened.close()


# -- the ingest front door -------------------------------------------------------------------------


def _ingest(store: Store, journal: Journal, tmp_path: Path, workers: int) -> tuple[Ingest, Writer]:
    settings = ServeSettings(store="unused", data_dir=tmp_path, workers=workers, max_delay_ms=10)
    writer = _writer(store, journal)
    return Ingest(settings, writer), writer


def test_a_decoding_worker_that_dies_is_replaced_and_its_export_is_retryable(store, journal, tmp_path, fake_store):
    service = unique("worker-dies")
    body, ids = _body(service)

    async def scenario() -> None:
        ingest, writer = _ingest(store, journal, tmp_path, workers=1)
        await writer.start()
        ingest.accepting = True
        try:
            await ingest.export("traces", _body(unique("warm-up"))[0], "application/x-protobuf")
            (pid,) = list(ingest._pool._processes)  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)
            with pytest.raises(Unavailable, match="decoding worker restarted; retry"):
                await ingest.export("traces", body, "application/x-protobuf")
            await ingest.export("traces", body, "application/x-protobuf")  # the retry, on a new worker
        finally:
            await writer.close()
            await asyncio.to_thread(ingest.close)

    asyncio.run(scenario())
    _exactly_once(fake_store, service, ids)


def test_a_spool_disk_error_refuses_the_export_as_retryable(store, journal, tmp_path, fake_store):
    service = unique("spool-error")
    body, ids = _body(service)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    real_spool = journal.spool_dir

    async def scenario() -> None:
        ingest, writer = _ingest(store, journal, tmp_path, workers=0)
        await writer.start()
        ingest.accepting = True
        try:
            journal.spool_dir = blocker / "spool"  # every spool write fails (ENOTDIR)
            with pytest.raises(Unavailable, match="cannot queue the request on disk") as refused:
                await ingest.export("traces", body, "application/x-protobuf")
            assert refused.value.retry_after_s > 0 and writer.queued_rows == 0
            journal.spool_dir = real_spool
            await ingest.export("traces", body, "application/x-protobuf")
        finally:
            await writer.close()
            await asyncio.to_thread(ingest.close)

    asyncio.run(scenario())
    _exactly_once(fake_store, service, ids)
