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
import shutil
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
from tracehouse_collector.store.journal import Journal, JournalBatch
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
        batch = JournalBatch(f"b{i}", directory, keys[i : i + 2], {})
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


# -- merged inserts: batches queued during an insert go into the next one ------------------------


def _queue(journal: Journal, service: str, n: int) -> tuple[list, set[str]]:
    """n journal batches of one request each, as the sealer makes them; and their span ids."""
    batches, ids = [], set()
    for _ in range(n):
        body, span_ids = _body(service)
        request = _encode(journal, body)
        batches.append(journal.write(journal.new_batch_id(), [(request.key, request.files)], {request.key: (5, 1)}))
        ids |= span_ids
    return batches, ids


def _restart(store: Store, journal: Journal, **settings) -> None:
    """Start a writer on what the journal holds (it replays before serving), then stop it."""

    async def scenario() -> None:
        writer = _writer(store, journal, **settings)
        await writer.start()
        await writer.close()

    asyncio.run(scenario())


def _recording_inserts(store: Store) -> list[tuple[str, str, str]]:
    """Record each insert's (table, pattern, token) and pass it on."""
    calls: list[tuple[str, str, str]] = []
    real_insert = store.insert_files

    def insert(table, pattern, fmt, token):
        calls.append((table, pattern, token))
        return real_insert(table, pattern, fmt, token)

    store.insert_files = insert
    return calls


def test_exports_queued_during_a_slow_insert_are_acknowledged_and_merged_into_one_insert(store, journal, fake_store):
    service = unique("merged")
    calls = _recording_inserts(store)
    recorded_insert = store.insert_files
    first_insert_started = threading.Event()
    release_first = threading.Event()

    def slow_first(table, pattern, fmt, token):
        if not first_insert_started.is_set():
            first_insert_started.set()
            release_first.wait(30)
        return recorded_insert(table, pattern, fmt, token)

    store.insert_files = slow_first
    bodies = [_body(service) for _ in range(4)]

    async def scenario() -> None:
        # batch_rows 16: what waits behind a running insert is sealed once it has a row
        writer = _writer(store, journal, batch_rows=16, max_insert_rows=1000)
        await writer.start()
        try:
            first = asyncio.create_task(writer.submit(_encode(journal, bodies[0][0])))
            await _until(first_insert_started.is_set)
            for body, _ids in bodies[1:]:  # one at a time: each its own batch
                await writer.submit(_encode(journal, body))  # answered once durably queued
            assert writer.stats.acked_from_queue == 3 and not first.done()
            assert writer.queue_status()["batches"] == 4  # the one being inserted, 3 queued
            release_first.set()
            await first
            await _until(lambda: writer.queue_status()["requests"] == 0)
            assert writer.stats.batches == 2  # the first batch, then the other three as one
        finally:
            await writer.close()

    asyncio.run(scenario())
    spans = [(t, p, tok) for t, p, tok in calls if t == "otel_traces"]
    assert len(spans) == 2 and "{" in spans[1][1] and spans[1][1].count(",") == 2
    assert list(journal.batches_dir.iterdir()) == []  # members and the group record are gone
    _exactly_once(fake_store, service, set().union(*(ids for _b, ids in bodies)))


def test_a_merge_recorded_before_a_crash_is_replayed_as_the_same_insert(store, tmp_path, fake_store):
    """Killed after the merge was recorded, whether or not its insert landed: the next start
    inserts the same batches together, under the same token, so nothing lands twice."""
    for landed in (False, True):
        service = unique(f"merge-crash-{landed}")
        journal = Journal(tmp_path / f"j{landed}", fsync=False)
        batches, ids = _queue(journal, service, 3)
        group = journal.merge(batches)
        if landed:  # the insert ran, the collector died before completing the group
            for table in group.tables:
                (pattern,) = group.patterns(table).values()
                store.insert_files(table, pattern, "JSONEachRow", f"{group.batch_id}:{table}")
        journal.close()

        journal = Journal(tmp_path / f"j{landed}", fsync=False)
        (replayed,) = journal.pending()
        assert replayed.batch_id == group.batch_id and replayed.members == [b.batch_id for b in batches]
        assert replayed.keys == [k for b in batches for k in b.keys]
        calls = _recording_inserts(store)
        _restart(store, journal)
        assert {tok for _t, _p, tok in calls} == {f"{group.batch_id}:{t}" for t in group.tables}
        assert list(journal.batches_dir.iterdir()) == []
        journal.close()
        _exactly_once(fake_store, service, ids)


def test_a_group_completed_in_part_before_a_crash_is_not_inserted_twice(store, tmp_path, fake_store):
    """Killed while removing an inserted group's batches: the rest replays as the group (its
    token deduplicated), never as batches of their own, which would store their rows again."""
    service = unique("merge-complete-crash")
    journal = Journal(tmp_path / "j", fsync=False)
    batches, ids = _queue(journal, service, 3)
    group = journal.merge(batches)
    for table in group.tables:
        (pattern,) = group.patterns(table).values()
        store.insert_files(table, pattern, "JSONEachRow", f"{group.batch_id}:{table}")
    shutil.rmtree(batches[0].directory)  # complete() got this far
    journal.close()

    journal = Journal(tmp_path / "j", fsync=False)
    (replayed,) = journal.pending()
    assert replayed.batch_id == group.batch_id and replayed.members == [b.batch_id for b in batches[1:]]
    _restart(store, journal)
    assert list(journal.batches_dir.iterdir()) == []
    journal.close()
    _exactly_once(fake_store, service, ids)


def test_batches_replayed_from_a_previous_run_are_not_merged(store, tmp_path, fake_store):
    """A batch found at start may have been inserted on its own before the crash: merged under a
    new token, its rows would land twice. Each is replayed as it was."""
    service = unique("no-merge-on-replay")
    journal = Journal(tmp_path / "j", fsync=False)
    batches, ids = _queue(journal, service, 3)
    first = batches[0]
    for table in first.tables:  # it landed; the collector died before completing it
        (pattern,) = first.patterns(table).values()
        store.insert_files(table, pattern, "JSONEachRow", f"{first.batch_id}:{table}")
    journal.close()

    journal = Journal(tmp_path / "j", fsync=False)
    calls = _recording_inserts(store)
    _restart(store, journal, batch_rows=16, max_insert_rows=1000)  # merging on
    assert {tok for _t, _p, tok in calls} == {f"{b.batch_id}:{t}" for b in batches for t in b.tables}
    journal.close()
    _exactly_once(fake_store, service, ids)


def test_a_bad_request_in_a_merged_group_is_quarantined_and_the_rest_land_once(store, tmp_path, fake_store):
    service = unique("merge-poison")
    marker = unique("POISON")
    journal = Journal(tmp_path / "j", fsync=False)
    batches, ids = _queue(journal, service, 2)
    bad = _encode(journal, trace_request(service, [make_span("bad", attributes={"note": marker})]).SerializeToString())
    bad_batch = journal.write(journal.new_batch_id(), [(bad.key, bad.files)], {bad.key: (1, 1)})
    more, more_ids = _queue(journal, service, 1)
    group = journal.merge([*batches, bad_batch, *more])
    journal.close()

    fake_store.fault("poison", marker=marker)
    try:
        journal = Journal(tmp_path / "j", fsync=False)
        _restart(store, journal)
    finally:
        fake_store.fault("ok")
    _exactly_once(fake_store, service, ids | more_ids)
    assert list(journal.batches_dir.iterdir()) == []
    (kept,) = journal.quarantine_dir.iterdir()
    assert kept.name == group.batch_id
    assert json.loads((kept / "reasons.json").read_text()).keys() == {bad.key}
    (rows,) = [p for p in kept.iterdir() if p.name != "reasons.json"]
    assert rows.name.startswith(bad_batch.batch_id) and marker.encode() in rows.read_bytes()
    journal.close()
