"""Start-up of the `tracehouse` commands that read through a running collector (`--server`).

Each command runs as its console script does (`from tracehouse_collector.cli.app import main`)
in a fresh interpreter, round-robin with the others, and its median wall time is reported beside:

- the floors: `python -c pass`, and importing the CLI's root module;
- the same command repeated inside one warm process (imports paid): the server's answer plus
  rendering. Start-up is the fresh run minus that, what the 80 ms target is about;
- with `--baseline SRC` (the `collector/src` of another checkout, e.g. `git worktree add
  /tmp/old REV`, then `/tmp/old/collector/src`), the same runs with those sources, and the ratio.

The collector is started here on a fresh store (or `--server URL` names a running one), and
one small LLM trace is sent to it for `traces show`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.collector import SOURCES, Collector, clean_env

TARGET_MS = 80.0
TRACE_ID = "5ba12b0e5ba12b0e5ba12b0e5ba12b0e"

# label -> the command's words after `tracehouse` ({trace}: the trace sent above)
COMMANDS = {
    "traces show ID": ["traces", "show", "{trace}"],
    "traces list": ["traces", "list", "--since", "1h"],
    "query latency --by model": ["query", "latency", "--by", "model"],
    "sql 'SELECT count() ...'": ["sql", "SELECT count() AS spans FROM otel_traces"],
    "runs list": ["runs", "list"],
}
CLI = "from tracehouse_collector.cli.app import main; raise SystemExit(main())"
# The same command `n` times in one process, after one warm-up run; prints the median seconds.
WARM = """
import contextlib, io, statistics, sys, time
from tracehouse_collector.cli.app import main
n, argv = int(sys.argv[1]), sys.argv[2:]
times = []
for i in range(n + 1):
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.TextIOWrapper(io.BytesIO())):  # with .buffer, as stdout has
        assert main(list(argv)) == 0, argv
    times.append(time.perf_counter() - t)
print(statistics.median(times[1:]))
"""


def _llm_trace(service: str = "bench-startup") -> bytes:
    """One OTLP/JSON request: an agent span and an LLM call with its messages and usage."""
    now = time.time_ns()

    def attr(key: str, value: object) -> dict:
        v = {"intValue": str(value)} if isinstance(value, int) else {"stringValue": str(value)}
        return {"key": key, "value": v}

    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "What is the weather?"}]}])
    answer = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "Sunny."}]}])
    spans = [
        {"traceId": TRACE_ID, "spanId": "a1a1a1a1a1a1a1a1", "name": "agent.turn", "kind": 2,
         "startTimeUnixNano": str(now - 900_000_000), "endTimeUnixNano": str(now)},
        {"traceId": TRACE_ID, "spanId": "b2b2b2b2b2b2b2b2", "parentSpanId": "a1a1a1a1a1a1a1a1",
         "name": "chat gpt-4o-mini", "kind": 3,
         "startTimeUnixNano": str(now - 800_000_000), "endTimeUnixNano": str(now - 100_000_000),
         "attributes": [
             attr("gen_ai.operation.name", "chat"), attr("gen_ai.provider.name", "openai"),
             attr("gen_ai.request.model", "gpt-4o-mini"), attr("gen_ai.usage.input_tokens", 120),
             attr("gen_ai.usage.output_tokens", 30), attr("gen_ai.input.messages", messages),
             attr("gen_ai.output.messages", answer),
         ]},
    ]  # fmt: skip
    resource = {"attributes": [attr("service.name", service)]}
    return json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}).encode()


def send_trace(server: str) -> None:
    """Sends the trace (idempotent: the same ids again are deduplicated) and waits until it reads back."""
    req = urllib.request.Request(
        server + "/v1/traces", data=_llm_trace(), headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(req, timeout=30).read()
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{server}/api/v1/traces/{TRACE_ID}", timeout=10).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"the trace sent to {server} did not become readable") from None
            time.sleep(0.2)


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def measure(server: str, trees: dict[str, list[Path]], runs: int) -> dict[str, dict[str, dict[str, float]]]:
    """{tree: {label: {"fresh": median s, "warm": median s (commands only)}}}: every case of
    every source tree, round-robin, so that a slow second on a shared machine hits them alike."""
    py = sys.executable
    argv = {
        f"tracehouse {label} --server": [w.format(trace=TRACE_ID) for w in words] + ["--server", server]
        for label, words in COMMANDS.items()
    }
    cases = {
        "python -c pass": [py, "-c", "pass"],
        "import tracehouse_collector.cli.app": [py, "-c", "import tracehouse_collector.cli.app"],
        **{label: [py, "-c", CLI, *a] for label, a in argv.items()},
    }
    envs = {tree: clean_env(sources) for tree, sources in trees.items()}
    for env in envs.values():  # .pyc files and the page cache
        for cmd in cases.values():
            _wall(cmd, env)
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(runs):
        for tree, env in envs.items():
            for label, cmd in cases.items():
                times.setdefault((tree, label), []).append(_wall(cmd, env))
    out = {
        tree: {label: {"fresh": statistics.median(times[tree, label])} for label in cases} for tree in trees
    }
    for tree, env in envs.items():
        for label, a in argv.items():
            warm = subprocess.run(
                [py, "-c", WARM, str(runs), *a], env=env, capture_output=True, text=True, check=False
            )
            if warm.returncode != 0:
                raise SystemExit(f"{label} ({tree}) failed:\n{warm.stderr}")
            out[tree][label]["warm"] = float(warm.stdout)
    return out


def report(this: dict[str, dict[str, float]], baseline: dict[str, dict[str, float]] | None, runs: int) -> str:
    """The table: median ms of each case, start-up (fresh minus warm) against the target, and
    the baseline's figures with the ratio baseline / this where there is one."""
    head = f"{'CLI start-up, median of ' + str(runs) + ' runs (ms)':50} {'fresh':>7} {'warm':>6} {'start-up':>9} {'target':>10}"
    if baseline:
        head += f" {'baseline':>9} {'start-up':>9} {'ratio':>6}"
    lines = [head]
    for label, m in this.items():
        warm = m.get("warm")
        startup = None if warm is None else m["fresh"] - warm
        row = f"{label:50} {m['fresh'] * 1e3:>7.1f} {_ms(warm):>6} {_ms(startup):>9} "
        row += f"{'' if startup is None else verdict(startup * 1e3):>10}"
        if baseline and label in baseline:
            b = baseline[label]
            b_startup = None if b.get("warm") is None else b["fresh"] - b["warm"]
            ratio = b_startup / startup if startup and b_startup else b["fresh"] / m["fresh"]
            row += f" {b['fresh'] * 1e3:>9.1f} {_ms(b_startup):>9} {ratio:>5.1f}x"
        lines.append(row.rstrip())
    return "\n".join(lines)


def verdict(startup_ms: float) -> str:
    return f"{'ok' if startup_ms <= TARGET_MS else 'OVER'} <={TARGET_MS:.0f}"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.1f}"


@contextmanager
def _collector(server: str | None) -> Iterator[str]:
    if server:
        yield server.rstrip("/")
        return
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp, Collector(Path(tmp) / "state") as c:
        yield c.http_url


def run(runs: int, server: str | None = None, baseline: str | None = None) -> str:
    trees = {"this": SOURCES}
    if baseline:
        old = Path(baseline).resolve()
        trees["baseline"] = [old, old.parents[1] / "instrumentation" / "src"]
    with _collector(server) as url:
        send_trace(url)
        results = measure(url, trees, runs)
    where = f"against {url}" + (f"; baseline: {baseline}" if baseline else "")
    return f"{where}\n{report(results['this'], results.get('baseline'), runs)}"
