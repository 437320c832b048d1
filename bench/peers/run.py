"""Tracehouse beside the servers a user would otherwise run for LLM traces: Arize Phoenix and
MLflow (its tracking server's OTLP endpoint), doing the same work side by side:

- ingest: the requests of bench/ingest (LLM spans, 8 per trace, about 2 KB of prompt each),
  sent as OTLP/HTTP protobuf to each server's `/v1/traces` by several concurrent senders;
  timed until every request was acknowledged, and until the last trace of every sender reads
  back whole through the server's own API (what a user waits for before seeing the data);
- lookup: one whole trace by id through that API (Tracehouse `GET /api/v1/traces/{id}`,
  Phoenix `GET /v1/projects/default/spans?trace_id=`, MLflow `GET /api/3.0/mlflow/traces/get`),
  the median of many, each answer checked to hold all the trace's spans;
- disk: what the system's directory holds once its server has stopped cleanly (SIGTERM: it
  flushes and closes its store), the disk blocks of every file but the benchmark's logs, as
  `du` counts them; for Tracehouse less the parts its merges replaced, which ClickHouse removes
  a little later (bench/peers/disk.py), with each table's active parts listed below the table.

The peers are not project dependencies: each lives in a virtual environment of its own under
`--venvs` (default ~/.cache/tracehouse-bench/peers: arize-phoenix/, mlflow/), made with `--setup`
(pip install arize-phoenix; pip install mlflow). A peer not installed there is reported as
skipped. Each server runs on a fresh store in a temporary directory: Tracehouse on embedded
ClickHouse (chDB), Phoenix and MLflow on their default SQLite. `--texts` sets how the spans'
prompts and answers vary, which decides how well a columnar store compresses them.

    make bench-peers                              # set-up, then the defaults below
    python -m bench.peers --requests 100 --spans 256 --senders 8
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.collector import Collector, free_port, wait_http
from bench.ingest.run import _text, build_requests
from bench.peers.disk import active_parts, disk_usage, replaced_parts
from bench.peers.report import BASE, Result, breakdown, table

DEFAULT_VENVS = Path.home() / ".cache" / "tracehouse-bench" / "peers"
# peer -> (distribution, the module its server needs)
PEERS = {"Phoenix": ("arize-phoenix", "phoenix.server.main"), "MLflow": ("mlflow", "mlflow.server")}
PROTOBUF = {"Content-Type": "application/x-protobuf"}


class System:
    """A running server: where OTLP goes, and how one trace reads back (its span count)."""

    name = ""
    otlp_headers: dict[str, str] = PROTOBUF

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def lookup(self, trace_id: str) -> int:
        raise NotImplementedError


class Tracehouse(System):
    name = BASE

    def lookup(self, trace_id: str) -> int:
        resp = self.session.get(f"{self.url}/api/v1/traces/{trace_id}", timeout=60)
        if resp.status_code == 404:
            return 0
        resp.raise_for_status()
        stack, count = list(resp.json()["spans"]), 0
        while stack:  # the spans come as a tree
            count += 1
            stack.extend(stack.pop()["children"])
        return count


class Phoenix(System):
    name = "Phoenix"

    def lookup(self, trace_id: str) -> int:
        resp = self.session.get(
            f"{self.url}/v1/projects/default/spans", params={"trace_id": trace_id, "limit": 1000}, timeout=60
        )
        if resp.status_code == 404:  # no project yet
            return 0
        resp.raise_for_status()
        return len(resp.json()["data"])


class MLflow(System):
    name = "MLflow"
    otlp_headers = {**PROTOBUF, "x-mlflow-experiment-id": "0"}  # the Default experiment

    def lookup(self, trace_id: str) -> int:
        resp = self.session.get(
            f"{self.url}/api/3.0/mlflow/traces/get", params={"trace_id": f"tr-{trace_id}"}, timeout=60
        )
        if resp.status_code in (400, 404):  # not there (yet)
            return 0
        resp.raise_for_status()
        return len(resp.json()["trace"]["spans"])


# -- the servers -----------------------------------------------------------------------------------


@contextmanager
def _process(cmd: list[str], env: dict[str, str], health: str, log: Path) -> Iterator[None]:
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(health, proc, timeout=300, log=log)
        yield
    finally:  # the whole process group: MLflow's server runs its workers as children
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def serve(name: str, venvs: Path, tmp: Path) -> Iterator[System]:
    """The server `name` on a fresh store under `tmp`, on free ports, until the block ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRACEHOUSE_", "OTEL_", "PHOENIX_", "MLFLOW_"))
    }
    if name == BASE:
        with Collector(tmp / "tracehouse") as c:
            yield Tracehouse(c.http_url)
    elif name == "Phoenix":
        env |= {
            "PHOENIX_WORKING_DIR": str(tmp / "phoenix"),
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(port),
            "PHOENIX_GRPC_PORT": str(free_port()),
        }
        cmd = [str(peer_env(venvs, name) / "bin" / "python"), "-m", "phoenix.server.main", "serve"]
        with _process(cmd, env, url + "/healthz", tmp / "phoenix.log"):
            yield Phoenix(url)
    else:
        cmd = [
            str(peer_env(venvs, name) / "bin" / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}", "--default-artifact-root", str(tmp / "mlartifacts"),
        ]  # fmt: skip
        with _process(cmd, env, url + "/health", tmp / "mlflow.log"):
            yield MLflow(url)


# -- the work --------------------------------------------------------------------------------------


def trace_ids(request: bytes) -> list[str]:
    """The trace ids of one serialized request, in order of first appearance."""
    msg = ExportTraceServiceRequest.FromString(request)
    ids = [s.trace_id.hex() for rs in msg.resource_spans for ss in rs.scope_spans for s in ss.spans]
    return list(dict.fromkeys(ids))


def _letters(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(string.ascii_lowercase + " ", k=n))


# --texts: how the spans' prompts and answers vary, which decides how well a store compresses them
TEXTS = {
    "repeated": None,  # bench/ingest's: 16 prompts and answers (of 24 words) taken in turn
    "distinct": _text,  # every span its own, of those 24 words
    "random": _letters,  # every span its own random letters: compresses less than prose does
}


def with_own_texts(
    requests_: list[bytes], text: Callable[[random.Random, int], str], seed: int = 11
) -> list[bytes]:
    """The requests with a prompt and an answer of its own in every span, each as long as before."""
    rng = random.Random(seed)
    out = []
    for body in requests_:
        msg = ExportTraceServiceRequest.FromString(body)
        for span in (s for rs in msg.resource_spans for ss in rs.scope_spans for s in ss.spans):
            for kv in span.attributes:
                if kv.key in ("gen_ai.input.messages", "gen_ai.output.messages"):
                    # cut to length: _text counts a space after its last word
                    kv.value.string_value = text(rng, (n := len(kv.value.string_value)) + 1)[:n]
        out.append(msg.SerializeToString())
    return out


def ingest(system: System, batches: list[list[bytes]], spans_per_trace: int) -> tuple[float, float]:
    """Each sender sends its batch, one request after the other; (seconds until all were
    acknowledged, seconds until the last trace of every sender read back whole)."""
    errors: list[str] = []

    def sender(batch: list[bytes]) -> None:
        with requests.Session() as session:
            for body in batch:
                resp = session.post(
                    system.url + "/v1/traces", data=body, headers=system.otlp_headers, timeout=300
                )
                if resp.status_code != 200:
                    errors.append(f"{system.name}: HTTP {resp.status_code} {resp.text[:200]}")
                    return

    start = time.perf_counter()
    threads = [threading.Thread(target=sender, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    acked = time.perf_counter() - start
    if errors:
        raise SystemExit(errors[0])
    last = [trace_ids(batch[-1])[-1] for batch in batches if batch]
    deadline = time.monotonic() + 600
    while last:
        last = [tid for tid in last if system.lookup(tid) < spans_per_trace]
        if last and time.monotonic() > deadline:
            raise SystemExit(f"{system.name}: {len(last)} traces never read back whole")
        if last:
            time.sleep(0.2)  # a poll costs the server too
    return acked, time.perf_counter() - start


def lookups(system: System, ids: list[str], spans_per_trace: int) -> float:
    """Median milliseconds of looking up each trace once (after one warm-up)."""
    system.lookup(ids[0])
    times = []
    for tid in ids:
        t = time.perf_counter()
        found = system.lookup(tid)
        times.append(time.perf_counter() - t)
        if found != spans_per_trace:
            raise SystemExit(f"{system.name}: trace {tid} read back {found} of {spans_per_trace} spans")
    return statistics.median(times) * 1e3


def peer_env(venvs: Path, name: str) -> Path:
    """The peer's own environment: Phoenix and MLflow pin graphql-core to versions that exclude
    each other (>=3.3 against <3.3 through graphene), so one environment cannot hold both."""
    return venvs / PEERS[name][0]


def missing_peers(venvs: Path, wanted: list[str]) -> dict[str, str]:
    """{peer: why it cannot run} for the wanted peers that are not installed under `venvs`."""
    out = {}
    for name in wanted:
        dist, module = PEERS[name]
        python = peer_env(venvs, name) / "bin" / "python"
        if not python.exists():
            out[name] = (
                f"no environment at {python.parents[1]} (python -m bench.peers --setup installs {dist} there)"
            )
        elif subprocess.run([str(python), "-c", f"import {module}"], capture_output=True).returncode != 0:
            out[name] = f"{dist} is not installed in {python.parents[1]} (python -m bench.peers --setup)"
    return out


def setup(venvs: Path, wanted: list[str]) -> None:
    """Creates (or completes) each wanted peer's environment; one that fails to install leaves
    the others."""
    for name in wanted:
        dist, _ = PEERS[name]
        env = peer_env(venvs, name)
        if not (env / "bin" / "python").exists():
            print(f"creating {env} ...", file=sys.stderr)
            subprocess.run(
                [getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(env)], check=True
            )
        print(f"installing {dist} ...", file=sys.stderr)
        pip = [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        proc = subprocess.run([*pip, dist], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"  {dist} did not install: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=48, help="OTLP requests in all (default 48)")
    parser.add_argument("--spans", type=int, default=128, help="spans per request (default 128)")
    parser.add_argument("--senders", type=int, default=4, help="concurrent senders (default 4)")
    parser.add_argument("--lookups", type=int, default=30, help="traces looked up (default 30)")
    parser.add_argument(
        "--venvs",
        type=Path,
        default=DEFAULT_VENVS,
        help=f"the peers' environments, one each (default {DEFAULT_VENVS})",
    )
    parser.add_argument(
        "--setup", action="store_true", help="create or complete the peers' environment first"
    )
    parser.add_argument(
        "--texts",
        choices=list(TEXTS),
        default="repeated",
        help="the spans' prompts and answers: bench/ingest's 16 in turn (repeated, the default), one of"
        " its 24-word text per span (distinct), or random letters per span (random)",
    )
    parser.add_argument("--peers", default=",".join(PEERS), help=f"peers to run (default {','.join(PEERS)})")
    args = parser.parse_args(argv)
    wanted = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in PEERS]
    if unknown:
        parser.error(f"unknown peers {unknown}; known: {', '.join(PEERS)}")
    if args.setup:
        setup(args.venvs, wanted)
    skipped = missing_peers(args.venvs, wanted)
    spans_per_trace = 8  # build_requests starts a trace every 8 spans
    if args.spans % spans_per_trace:
        parser.error(f"--spans must be a multiple of {spans_per_trace} (whole traces per request)")
    requests_ = build_requests(args.requests, args.spans)
    if (text := TEXTS[args.texts]) is not None:
        requests_ = with_own_texts(requests_, text)
    batches = [requests_[i :: args.senders] for i in range(args.senders)]
    ids = random.Random(1).sample([t for r in requests_ for t in trace_ids(r)], args.lookups)
    print(
        f"{args.requests} requests x {args.spans} LLM spans ({args.requests * args.spans} spans, "
        f"{spans_per_trace} per trace) from {args.senders} senders; {args.lookups} trace lookups"
        + f"; {args.texts} texts",
        flush=True,
    )
    results, notes = [], []
    for name in [BASE, *(p for p in wanted if p not in skipped)]:
        with tempfile.TemporaryDirectory(prefix=f"bench-peers-{name.lower()}-") as tmp:
            with serve(name, args.venvs, Path(tmp)) as system:
                acked, visible = ingest(system, batches, spans_per_trace)
                lookup_ms = lookups(system, ids, spans_per_trace)
            usage = disk_usage(Path(tmp))  # the server has stopped
            spans = args.requests * args.spans
            if name == BASE:
                parts = active_parts(Path(tmp) / "tracehouse" / "data")
                as_left, usage = usage, disk_usage(Path(tmp), skip=replaced_parts(parts))
                notes.append(breakdown(parts, usage, as_left, spans))
            else:
                notes.append(
                    f"{name} on disk: {usage.apparent / 1e6:.2f} MB in files,"
                    f" {usage.allocated / 1e6:.2f} MB of disk blocks"
                )
        results.append(Result(name, spans, acked, visible, lookup_ms, usage.allocated))
        print(f"  {name}: done", file=sys.stderr, flush=True)
    print("\n\n".join([table(results, skipped), *notes]))
    return 0
