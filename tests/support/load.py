"""What the durability tiers share: a retrying OTLP load that records what was acknowledged, and
checks read from the store itself (the fake ClickHouse) that each acknowledged span landed once."""

from __future__ import annotations

import threading
import time
from collections import deque

import requests
from fake_clickhouse import FakeClickHouseProcess
from helpers import make_span, new_trace_id, quote, trace_request
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse


def spans_request(service: str, n: int, tag: str = ""):
    trace_id = new_trace_id()
    spans = [make_span(f"op-{i % 5}", trace_id=trace_id, attributes={"i": i, "tag": tag}) for i in range(n)]
    return trace_request(service, spans), [s.span_id.hex() for s in spans]


class Load:
    """Client threads that send every request until it is acknowledged, retrying like an SDK."""

    def __init__(self, url: str, bodies: list[bytes], threads: int = 6) -> None:
        self.url = url + "/v1/traces"
        self.bodies = bodies
        self.acked = [False] * len(bodies)
        self.acked_at: list[float | None] = [None] * len(bodies)
        self.attempts = [0] * len(bodies)
        self.statuses: dict[str, int] = {}
        self.partial: list[int] = []
        self._todo = deque(range(len(bodies)))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def pause(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in self._threads)

    def resume(self) -> Load:
        self._stop.clear()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(len(self._threads))]
        return self.start()

    @property
    def n_acked(self) -> int:
        with self._lock:
            return sum(self.acked)

    def acked_snapshot(self) -> set[int]:
        with self._lock:
            return {i for i, a in enumerate(self.acked) if a}

    def wait_acked(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.n_acked < n:
            assert time.monotonic() < deadline, f"only {self.n_acked} of {n} acknowledged; statuses {self.statuses}"
            time.sleep(0.005)

    def _note(self, key: str) -> None:
        with self._lock:
            self.statuses[key] = self.statuses.get(key, 0) + 1

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            with self._lock:
                if not self._todo:
                    return
                i = self._todo.popleft()
                self.attempts[i] += 1
            ok = False
            try:
                r = session.post(
                    self.url, data=self.bodies[i], headers={"Content-Type": "application/x-protobuf"}, timeout=30
                )
                self._note(str(r.status_code))
                if r.status_code == 200:
                    ok = True
                    resp = ExportTraceServiceResponse.FromString(r.content)
                    if resp.partial_success.rejected_spans:
                        with self._lock:
                            self.partial.append(i)
            except requests.RequestException as exc:
                self._note(type(exc).__name__)
                session.close()
                session = requests.Session()
            with self._lock:
                if ok:
                    self.acked[i] = True
                    self.acked_at[i] = time.monotonic()
                else:
                    self._todo.append(i)
            if not ok:
                time.sleep(0.05)  # back off a little, as exporters do
        session.close()


def make_load_requests(service: str, n_requests: int, spans_per_request: int):
    bodies, all_ids = [], []
    for r in range(n_requests):
        req, ids = spans_request(service, spans_per_request, tag=f"req-{r}")
        bodies.append(req.SerializeToString())
        all_ids.append(ids)
    return bodies, all_ids


def collector_env(store: FakeClickHouseProcess, **extra: str) -> dict[str, str]:
    return {
        "TRACEHOUSE_STORE": store.dsn,
        "TRACEHOUSE_MAX_DELAY_MS": "50",
        "TRACEHOUSE_SLOW_INSERT_MS": "1000",
        **extra,
    }


def stored_counts(store: FakeClickHouseProcess, service: str) -> tuple[int, int]:
    """(rows, distinct span ids) of a service, read from the store itself."""
    row = store.sql(
        f"SELECT count() AS n, uniqExact(SpanId) AS u FROM otel_traces WHERE ServiceName = {quote(service)}"
    )[0]
    return int(row["n"]), int(row["u"])


def stored_span_ids(store: FakeClickHouseProcess, service: str) -> dict[str, int]:
    rows = store.sql(
        f"SELECT SpanId, count() AS n FROM otel_traces WHERE ServiceName = {quote(service)} GROUP BY SpanId"
    )
    return {r["SpanId"]: int(r["n"]) for r in rows}


def wait_until(predicate, timeout: float, what: str) -> None:
    """Like helpers.wait_for, but fails naming what it waited for."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def queue_empty(c) -> bool:
    health = c.health().json()
    return health["queue"]["requests"] == 0 and health["queue"]["pending_requests"] == 0


def assert_stored_once(store: FakeClickHouseProcess, service: str, acked_ids: set[str]) -> None:
    counts = stored_span_ids(store, service)
    missing = acked_ids - counts.keys()
    dupes = {s: n for s, n in counts.items() if n != 1}
    assert not missing, f"{len(missing)} acknowledged spans missing"
    assert not dupes, f"{len(dupes)} spans stored more than once"
