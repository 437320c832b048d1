"""Heavy SQL readers to run against a collector while it ingests (`--readers N`).

Each reader thread sends one statement after another through POST /api/v1/sql: a full scan
aggregating every stored span, or a 1 s sleep standing in for a slow dashboard query. The
figures are the readers' latencies and how often the collector told them to retry (503), to
print beside the ingest rate of the same run and of a run without readers.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.error
import urllib.request

STATEMENTS = (
    "SELECT ServiceName, SpanName, count(), quantile(0.99)(Duration), sum(length(SpanAttributes['gen_ai.prompt'])) "
    "FROM otel_traces GROUP BY ServiceName, SpanName ORDER BY count() DESC LIMIT 100",
    "SELECT sleep(1)",
)


class HeavyReaders:
    def __init__(self, http: str, n: int) -> None:
        self.http = http
        self.n = n
        self.latencies: list[float] = []
        self.busy = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)]

    def __enter__(self) -> HeavyReaders:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=120)

    def _run(self, i: int) -> None:
        k = i
        while not self._stop.is_set():
            statement = STATEMENTS[k % len(STATEMENTS)]
            k += 1
            req = urllib.request.Request(
                f"{self.http}/api/v1/sql",
                data=json.dumps({"sql": statement}).encode(),
                headers={"Content-Type": "application/json"},
            )
            t = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=120) as resp:
                    resp.read()
                self.latencies.append(time.perf_counter() - t)
            except urllib.error.HTTPError as exc:
                if exc.code == 503:  # busy: retry after the time it asks for
                    self.busy += 1
                    self._stop.wait(float(exc.headers.get("Retry-After") or 1))
                else:
                    self.errors.append(f"{exc.code}: {exc.read()[:200]!r}")
            except OSError as exc:
                self.errors.append(str(exc))

    def summary(self) -> dict:
        lat = sorted(self.latencies)
        pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")  # noqa: E731
        return {
            "readers": self.n,
            "queries": len(lat),
            "busy_503": self.busy,
            "errors": self.errors[:5],
            "read_p50_s": statistics.median(lat) if lat else float("nan"),
            "read_p95_s": pick(0.95),
            "read_max_s": lat[-1] if lat else float("nan"),
        }
