"""Instrumentation overhead: what an instrumentor adds to one OpenAI chat completion, in CPU time
of the calling thread (`time.thread_time_ns()`) and in wall time, side by side with the same
calls uninstrumented, in the same run:

- uninstrumented (the baseline),
- Tracehouse (`tracehouse.instrumentors.openai.OpenAIInstrumentor`),
- OpenLLMetry (`opentelemetry-instrumentation-openai`),
- OpenInference (`openinference-instrumentation-openai`),
- OpenTelemetry's own `opentelemetry-instrumentation-openai-v2`.

The calls go to a local HTTP server (stdlib `http.server`, in a thread of this process) that
answers `/v1/chat/completions` with a fixed, realistic JSON body, or for `stream=True` with an
SSE stream of 20 content chunks and a usage chunk. Every case runs in its own fresh process
(the instrumentors patch the same methods) with the same set-up: an SDK `TracerProvider` with a
`BatchSpanProcessor` to an exporter that only counts spans (so no case pays for export), an SDK
`LoggerProvider` likewise (for instrumentors that send message content as log events), message
content captured by all of them, warm-up calls, then the measured calls. No MeterProvider is
set up, so metrics cost nothing in any case.

The machine may be shared, and other tenants slow whole seconds down, so the baseline is taken
in the same process at the same time: each process alternates blocks of calls with its
instrumentor on and off, swapping in and out exactly the attributes its `instrument()` changed
in openai (its `uninstrument()` is not relied on: some leave wrappers behind), and overhead is
the instrumented median minus the interleaved uninstrumented median. The uninstrumented case
does the same with nothing to swap: its difference is the noise floor. The cases run in rounds
(a fresh process per case and round, round-robin) and their calls are pooled.

The competitors are not project dependencies: they live in their own virtual environment,
`bench/.venv-instrumentation`, created (or completed) on first use or with `--setup`. One that
fails to install, to import, or to accept the installed openai is reported as unavailable.

    make bench-instrumentation                                  # set-up, then the defaults below
    python -m bench.instrumentation --calls 600 --stream-calls 200 --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / "bench" / ".venv-instrumentation"
VENV_PYTHON = VENV / "bin" / "python"
SETUP_FILE = VENV / ".bench-setup.json"

TARGET_CALL_US = 150  # Tracehouse overhead per non-streamed call
TARGET_STREAM_US = 400  # Tracehouse overhead per 20-chunk stream

CORE_PACKAGES = ["-e", str(ROOT / "instrumentation"), "openai", "opentelemetry-sdk"]
# case -> (label, distribution to install, module with OpenAIInstrumentor)
CASES = {
    "none": ("uninstrumented", None, None),
    "tracehouse": ("Tracehouse", None, "tracehouse.instrumentors.openai"),
    "openllmetry": (
        "OpenLLMetry (opentelemetry-instrumentation-openai)",
        "opentelemetry-instrumentation-openai",
        "opentelemetry.instrumentation.openai",
    ),
    "openinference": (
        "OpenInference (openinference-instrumentation-openai)",
        "openinference-instrumentation-openai",
        "openinference.instrumentation.openai",
    ),
    "otel-v2": (
        "OpenTelemetry (opentelemetry-instrumentation-openai-v2)",
        "opentelemetry-instrumentation-openai-v2",
        "opentelemetry.instrumentation.openai_v2",
    ),
}
CONTENT_ENV = {
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
    "TRACELOOP_TRACE_CONTENT": "true",
    # OpenInference captures content unless OPENINFERENCE_HIDE_* say otherwise: left unset.
}

# -- the fake OpenAI API -----------------------------------------------------------------------

MODEL = "gpt-4o-mini"
SYSTEM_PROMPT = (
    "You are the support assistant of an online shop. Answer in at most three sentences, cite the "
    "order or policy you rely on, and never invent tracking numbers or refund amounts."
)
USER_PROMPT = (
    "Context:\n"
    "[order 10442] placed 2024-11-02, 2 items (wireless headphones, USB-C cable), shipped 2024-11-04 "
    "with DHL Express, tracking JD014600006281230, estimated delivery 2024-11-07; status: delayed at "
    "the Leipzig hub since 2024-11-06.\n"
    "[policy refunds] Orders delayed by more than 5 business days beyond the estimated delivery "
    "date may be cancelled for a full refund, including shipping. Partial refunds are not offered "
    "for delays. Customers can request cancellation in their account or via support.\n"
    "[policy escalation] Delays over 3 business days are escalated to the carrier automatically.\n\n"
    "Question: My headphones were supposed to arrive last Thursday and the tracking page has not "
    "moved since Wednesday. Can I get my money back, or at least the shipping fee? What are you "
    "doing about it?"
)
ANSWER_WORDS = (  # noqa: SIM905 - readable prose
    "Your order 10442 has been held at the DHL hub in Leipzig since November 6, and because the delay "
    "is longer than three business days it has already been escalated to the carrier. Under our "
    "refund policy you can cancel for a full refund, shipping included, once the delay passes five "
    "business days beyond the estimated delivery date, which will be the case on November 14; "
    "partial refunds for delays are not available. If you prefer to wait, I will keep the escalation "
    "open and you will be notified as soon as the parcel moves."
).split(" ")


def _completion_body() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
            "object": "chat.completion",
            "created": 1741569952,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": " ".join(ANSWER_WORDS),
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(),
            "service_tier": "default",
            "system_fingerprint": "fp_06737a9306",
        }
    ).encode()


def _usage() -> dict:
    return {
        "prompt_tokens": 243,
        "completion_tokens": 104,
        "total_tokens": 347,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _stream_body(chunks: int = 20) -> bytes:
    per = -(-len(ANSWER_WORDS) // chunks)
    pieces = [" ".join(ANSWER_WORDS[i * per : (i + 1) * per]) + " " for i in range(chunks)]
    base = {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion.chunk",
        "created": 1741570283,
        "model": "gpt-4o-mini-2024-07-18",
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306",
    }
    events = []
    for i, piece in enumerate(pieces):
        delta = {"role": "assistant", "content": piece, "refusal": None} if i == 0 else {"content": piece}
        choice = {
            "index": 0,
            "delta": delta,
            "logprobs": None,
            "finish_reason": "stop" if i == chunks - 1 else None,
        }
        events.append(dict(base, choices=[choice], usage=None))
    events.append(dict(base, choices=[], usage=_usage()))
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as with the real API
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stalls
    COMPLETION = _completion_body()
    STREAM = _stream_body()

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if not self.path.endswith("/chat/completions"):
            self.send_error(404)
            return
        stream = json.loads(body).get("stream") is True
        payload = self.STREAM if stream else self.COMPLETION
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8" if stream else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-request-id", "req_7f1c3a9e0b2d4e6f8a1b3c5d7e9f0a2b")
        self.send_header("openai-processing-ms", "412")
        self.send_header("openai-version", "2020-10-01")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def start_server() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="fake-openai").start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


# -- one case, in the benchmark's virtual environment ------------------------------------------


def _worker(config_json: str) -> None:
    """Runs in a fresh process of the benchmark venv; prints one JSON line."""
    cfg = json.loads(config_json)
    result = {"case": cfg["case"]}
    try:
        result.update(_measure(cfg))
    except _Unavailable as exc:
        result["unavailable"] = str(exc)
    print(json.dumps(result), flush=True)


class _Unavailable(Exception):
    pass


def _providers() -> tuple[object, object, list[int]]:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    counts = [0, 0]  # spans, log records

    class CountingSpanExporter(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            counts[0] += len(spans)  # type: ignore[arg-type]
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(CountingSpanExporter()))
    trace.set_tracer_provider(tracer_provider)

    logger_provider = None
    try:  # the logs SDK is still underscored; a missing one only matters to event-based content
        from opentelemetry._logs import set_logger_provider
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogExporter, LogExportResult

        class CountingLogExporter(LogExporter):
            def export(self, batch: object) -> LogExportResult:
                counts[1] += len(batch)  # type: ignore[arg-type]
                return LogExportResult.SUCCESS

            def shutdown(self) -> None:
                pass

            def force_flush(self, timeout_millis: int = 30000) -> bool:
                return True

        logger_provider = LoggerProvider()
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(CountingLogExporter()))
        set_logger_provider(logger_provider)
        try:
            from opentelemetry._events import set_event_logger_provider
            from opentelemetry.sdk._events import EventLoggerProvider

            set_event_logger_provider(EventLoggerProvider(logger_provider))
        except ImportError:
            pass
    except ImportError:
        pass
    return tracer_provider, logger_provider, counts


def _instrumentor(
    case: str, tracer_provider: object, logger_provider: object
) -> tuple[object, dict, str | None]:
    """The case's instrumentor (None for the baseline), its instrument() arguments and version."""
    import importlib
    from importlib import metadata

    _, dist, module = CASES[case]
    if module is None:
        return None, {}, None
    try:
        instrumentor = importlib.import_module(module).OpenAIInstrumentor()
    except Exception as exc:  # noqa: BLE001 - any import failure makes the case unavailable
        raise _Unavailable(f"import failed: {type(exc).__name__}: {exc}") from None
    from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

    conflict = get_dependency_conflicts(instrumentor.instrumentation_dependencies())
    if conflict is not None:
        raise _Unavailable(f"does not support the installed openai: {conflict}")
    kwargs = {"tracer_provider": tracer_provider}
    if logger_provider is not None:
        kwargs["logger_provider"] = logger_provider
    return instrumentor, kwargs, metadata.version(dist or "tracehouse")


_MISSING = object()


def _openai_state() -> dict[tuple[object, str], object]:
    """Every attribute of openai's loaded modules and of the classes they define."""
    state: dict[tuple[object, str], object] = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "openai" or name.startswith("openai.")):
            continue
        for attr, value in list(vars(module).items()):
            state[(module, attr)] = value
            if isinstance(value, type) and value.__module__ == name:
                for cattr, cvalue in list(vars(value).items()):
                    state[(value, cattr)] = cvalue
    return state


class _Switch:
    """Turns an instrumentor on and off by putting back the attributes its instrument() changed
    in openai (uninstrument() is not relied on: some leave wrappers behind)."""

    def __init__(self, instrumentor: object, kwargs: dict) -> None:
        self.changes: dict[tuple[object, str], tuple[object, object]] = {}  # (owner, name): (off, on)
        if instrumentor is None:
            return
        before = _openai_state()
        try:
            instrumentor.instrument(**kwargs)
        except Exception as exc:  # noqa: BLE001
            raise _Unavailable(f"instrument() failed: {type(exc).__name__}: {exc}") from None
        after = _openai_state()
        classes = {owner for owner, _ in before if isinstance(owner, type)}
        for key, new in after.items():
            old = before.get(key, _MISSING)
            # Functions and methods replaced, or set on a class over inherited ones, only: imports
            # done by instrument() also add submodule attributes and complete pydantic models.
            if (
                new is not old
                and not key[1].startswith("__")
                and not isinstance(new, type | types.ModuleType)
                and (callable(new) or isinstance(new, classmethod | staticmethod | property))
                and (old is not _MISSING or key[0] in classes)
            ):
                self.changes[key] = (old, new)
        if not self.changes:
            raise _Unavailable("instrument() changed nothing in openai")

    def __call__(self, on: bool) -> None:
        for (obj, attr), (old, new) in self.changes.items():
            if on or old is not _MISSING:
                setattr(obj, attr, new if on else old)
            elif attr in vars(obj):
                delattr(obj, attr)  # back to the inherited one


BLOCK = {"call": 10, "stream": 4}  # calls per block; instrumented and baseline blocks alternate


def _measure(cfg: dict) -> dict:
    tracer_provider, logger_provider, counts = _providers()
    instrumentor, kwargs, version = _instrumentor(cfg["case"], tracer_provider, logger_provider)
    import openai

    client = openai.OpenAI(base_url=cfg["url"], api_key="sk-bench-0000", max_retries=0, timeout=30)
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": USER_PROMPT}]
    expected = " ".join(ANSWER_WORDS)

    def call() -> None:
        resp = client.chat.completions.create(model=MODEL, messages=messages, temperature=0.2, max_tokens=512)
        if resp.choices[0].message.content != expected or resp.usage.total_tokens != 347:
            raise SystemExit("unexpected response")

    def stream() -> None:
        parts = []
        usage = None
        for chunk in client.chat.completions.create(
            model=MODEL,
            messages=messages,
            temperature=0.2,
            max_tokens=512,
            stream=True,
            stream_options={"include_usage": True},
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                usage = chunk.usage
        if "".join(parts).strip() != expected or usage is None:
            raise SystemExit("unexpected stream")

    call()  # openai imports some modules lazily: load them before the instrumentor's patches are found
    stream()
    switch = _Switch(instrumentor, kwargs)
    out: dict = {
        "version": version,
        "patched": sorted(f"{getattr(o, '__name__', o)}.{a}" for o, a in switch.changes),
    }
    for kind, fn, n in (("call", call, cfg["calls"]), ("stream", stream, cfg["stream_calls"])):
        res = {state: {"cpu_us": [], "wall_us": [], "spans": 0} for state in ("on", "off")}
        for on in (False, True):  # warm both paths
            switch(on)
            for _ in range(cfg["warmup"]):
                fn()
        block = 0
        while len(res["on"]["cpu_us"]) < n:
            size = min(BLOCK[kind], n - len(res["on"]["cpu_us"]))
            for on in (True, False) if block % 2 == 0 else (False, True):
                switch(on)
                fn()  # untimed: the first call after a switch
                tracer_provider.force_flush()
                spans_before = counts[0]
                r = res["on" if on else "off"]
                for _ in range(size):
                    c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
                    fn()
                    w1, c1 = time.perf_counter_ns(), time.thread_time_ns()
                    r["cpu_us"].append((c1 - c0) / 1e3)
                    r["wall_us"].append((w1 - w0) / 1e3)
                tracer_provider.force_flush()
                r["spans"] += counts[0] - spans_before
            block += 1
        out[kind] = res
    if logger_provider is not None:
        logger_provider.force_flush()
    out["log_records"] = counts[1]
    tracer_provider.shutdown()
    return out


# -- set-up of the benchmark's virtual environment ----------------------------------------------


def _pip(*args: str) -> str | None:
    """pip install into the benchmark venv; None on success, else the error's last lines."""
    proc = subprocess.run(
        [str(VENV_PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
    )
    if proc.returncode == 0:
        return None
    lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip() and "WARNING" not in ln]
    return " / ".join(lines[-2:]) or f"pip exited with {proc.returncode}"


def setup(force: bool = False) -> dict[str, str]:
    """Creates or completes the venv; returns {distribution: why it did not install}."""
    stamp_inputs = [ROOT / "instrumentation" / "pyproject.toml"]
    if (
        not force
        and SETUP_FILE.is_file()
        and VENV_PYTHON.exists()
        and all(SETUP_FILE.stat().st_mtime >= p.stat().st_mtime for p in stamp_inputs)
    ):
        return json.loads(SETUP_FILE.read_text())["failed"]
    if not VENV_PYTHON.exists():
        print(f"creating {VENV.relative_to(ROOT)} ...", file=sys.stderr)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    print("installing tracehouse, openai, opentelemetry-sdk and the competitors ...", file=sys.stderr)
    error = _pip(*CORE_PACKAGES)
    if error is not None:
        raise SystemExit(f"could not install the benchmark's core packages: {error}")
    failed = {}
    for _, dist, _ in CASES.values():
        if dist is not None and (error := _pip(dist)) is not None:
            failed[dist] = error
            print(f"  {dist}: not installed ({error})", file=sys.stderr)
    SETUP_FILE.write_text(json.dumps({"failed": failed}))
    return failed


# -- orchestration and report --------------------------------------------------------------------


def _run_case(case: str, url: str, calls: int, stream_calls: int, warmup: int) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRACEHOUSE_", "OTEL_", "TRACELOOP_", "OPENINFERENCE_"))
    }
    env.update(CONTENT_ENV)
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONHASHSEED"] = "0"  # the same dict and set layouts in every process
    env["OTEL_METRICS_EXPORTER"] = env["OTEL_LOGS_EXPORTER"] = env["OTEL_TRACES_EXPORTER"] = "none"
    env["TRACELOOP_TELEMETRY"] = "false"
    cfg = {"case": case, "url": url, "calls": calls, "stream_calls": stream_calls, "warmup": warmup}
    code = f"from bench.instrumentation.run import _worker; _worker({json.dumps(json.dumps(cfg))})"
    proc = subprocess.run([str(VENV_PYTHON), "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        if case in ("none", "tracehouse"):  # no comparison without these: fail loudly
            raise SystemExit(f"the {case!r} case failed:\n{proc.stderr}")
        tail = " / ".join(proc.stderr.strip().splitlines()[-2:])
        return {"case": case, "unavailable": f"worker failed ({proc.returncode}): {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "p90": statistics.quantiles(values, n=10)[8] if len(values) > 1 else values[0],
        "n": len(values),
    }


def _share(n: int, r: int, rounds: int) -> int:
    """Round r's part of n calls."""
    return n // rounds + (1 if r < n % rounds else 0)


def run(
    calls: int, stream_calls: int, warmup: int, rounds: int, cases: list[str], install_failed: dict
) -> dict:
    server, url = start_server()
    pooled: dict[str, dict] = {}
    try:
        for r in range(rounds):
            order = cases[r % len(cases) :] + cases[: r % len(cases)]  # rotate: no case always first
            for case in order:
                if "unavailable" in pooled.get(case, {}):
                    continue
                dist = CASES[case][1]
                if dist in install_failed:
                    pooled[case] = {"unavailable": f"pip install failed: {install_failed[dist]}"}
                    continue
                t = time.perf_counter()
                res = _run_case(case, url, _share(calls, r, rounds), _share(stream_calls, r, rounds), warmup)
                print(f"round {r + 1}/{rounds} {case:14} {time.perf_counter() - t:5.1f}s", file=sys.stderr)
                if "unavailable" in res:
                    pooled[case] = {"unavailable": res["unavailable"]}
                    continue
                acc = pooled.setdefault(
                    case, {"version": res["version"], "patched": res["patched"], "log_records": 0}
                )
                acc["log_records"] += res["log_records"]
                for kind in ("call", "stream"):
                    for state in ("on", "off"):
                        k = acc.setdefault(kind, {}).setdefault(
                            state, {"cpu_us": [], "wall_us": [], "spans": 0}
                        )
                        for key in ("cpu_us", "wall_us"):
                            k[key] += res[kind][state][key]
                        k["spans"] += res[kind][state]["spans"]
    finally:
        server.shutdown()

    results: dict = {
        "calls": calls,
        "stream_calls": stream_calls,
        "warmup": warmup,
        "rounds": rounds,
        "cases": [],
    }
    for case in cases:
        p = pooled.get(case, {"unavailable": "not run"})
        row: dict = {"case": case, "name": CASES[case][0]}
        if "unavailable" in p:
            row["unavailable"] = p["unavailable"]
            results["cases"].append(row)
            continue
        row["version"] = p["version"]
        row["log_records"] = p["log_records"]
        row["patched"] = p["patched"]
        for kind in ("call", "stream"):
            on, off = p[kind]["on"], p[kind]["off"]
            d: dict = {"spans": on["spans"], "spans_while_uninstrumented": off["spans"]}
            for metric in ("cpu_us", "wall_us"):
                d[metric] = _stats(on[metric])
                d[f"baseline_{metric}"] = _stats(off[metric])
                d[f"overhead_{metric}"] = d[metric]["median"] - d[f"baseline_{metric}"]["median"]
            row[kind] = d
        results["cases"].append(row)
    th = next((c for c in results["cases"] if c["case"] == "tracehouse" and "call" in c), None)
    for row in results["cases"]:
        for kind in ("call", "stream"):
            if (
                th is not None
                and kind in row
                and "overhead_cpu_us" in row[kind]
                and th[kind]["overhead_cpu_us"] > 0
            ):
                row[kind]["ratio_vs_tracehouse"] = row[kind]["overhead_cpu_us"] / th[kind]["overhead_cpu_us"]
    if th is not None and "overhead_cpu_us" in th["call"]:
        results["targets"] = {
            "call": {"target_us": TARGET_CALL_US, "measured_us": th["call"]["overhead_cpu_us"]},
            "stream": {"target_us": TARGET_STREAM_US, "measured_us": th["stream"]["overhead_cpu_us"]},
        }
        for t in results["targets"].values():
            t["met"] = t["measured_us"] <= t["target_us"]
    return results


def print_table(results: dict) -> None:
    titles = {
        "call": f"non-streamed chat completion, {results['calls']} calls",
        "stream": f"streamed chat completion (20 chunks + usage), {results['stream_calls']} calls",
    }
    short = {"none": "uninstrumented", "tracehouse": "Tracehouse", "openllmetry": "OpenLLMetry",
             "openinference": "OpenInference", "otel-v2": "OTel openai-v2"}  # fmt: skip
    for kind in ("call", "stream"):
        print(f"\n{titles[kind]}: µs per call (calling thread CPU; wall)")
        print(
            f"{'instrumentor':16} {'version':>9} {'CPU med':>8} {'CPU p90':>8} {'base med':>9} {'overhead':>9} "
            f"{'vs Tracehouse':>13} {'wall med':>9} {'wall ovh':>9} {'spans':>6}"
        )
        for row in results["cases"]:
            if "unavailable" in row:
                if kind == "call":
                    print(f"{short[row['case']]:16} unavailable: {row['unavailable'][:160]}")
                continue
            d = row[kind]
            aa = row["case"] == "none"  # its two halves are both uninstrumented: the noise floor
            ovh, wall_ovh = (
                f"({d[k]:+.0f})" if aa else f"{d[k]:+.0f}" for k in ("overhead_cpu_us", "overhead_wall_us")
            )
            ratio = "-" if aa or "ratio_vs_tracehouse" not in d else f"{d['ratio_vs_tracehouse']:.2f}x"
            spans = f"{d['spans']}" + (
                f"+{d['spans_while_uninstrumented']}!" if d["spans_while_uninstrumented"] else ""
            )
            print(
                f"{short[row['case']]:16} {row['version'] or '-':>9} {d['cpu_us']['median']:>8.0f} "
                f"{d['cpu_us']['p90']:>8.0f} {d['baseline_cpu_us']['median']:>9.0f} {ovh:>9} {ratio:>13} "
                f"{d['wall_us']['median']:>9.0f} {wall_ovh:>9} {spans:>6}"
            )
    targets = results.get("targets")
    if targets:
        print("\ntargets (Tracehouse overhead, median CPU µs of the calling thread):")
        for kind, label in (("call", "per non-streamed call"), ("stream", "per 20-chunk stream")):
            t = targets[kind]
            verdict = "met" if t["met"] else "MISSED"
            print(f"  {label:22} <= {t['target_us']:>3} µs   measured {t['measured_us']:6.0f} µs   {verdict}")
    print(
        "\nEach process alternates blocks of calls with its instrumentor on and off (what its instrument()\n"
        "changed in openai swapped in and out):\n"
        "med, p90: instrumented calls; base med: the same process's uninstrumented calls, interleaved;\n"
        "overhead = med - base med (for 'uninstrumented', in brackets: the same between two uninstrumented\n"
        "halves, i.e. the noise floor); vs Tracehouse = overhead / Tracehouse's overhead.\n"
        "spans: exported (counted, not serialized) by the measured instrumented calls."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.instrumentation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="non-streamed calls per case (default 300)")
    parser.add_argument(
        "--stream-calls", type=int, default=100, help="20-chunk streamed calls per case (default 100)"
    )
    parser.add_argument(
        "--warmup", type=int, default=20, help="warm-up calls of each kind per process (default 20)"
    )
    parser.add_argument(
        "--rounds", type=int, default=4, help="fresh processes per case, run round-robin (default 4)"
    )
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}"
    )
    parser.add_argument(
        "--setup", action="store_true", help="create or complete the benchmark's venv, then exit"
    )
    parser.add_argument("--reinstall", action="store_true", help="re-run pip install in the venv first")
    parser.add_argument(
        "--json", action="store_true", help="print results as JSON (per-call samples left out)"
    )
    args = parser.parse_args(argv)

    failed = setup(force=args.reinstall)
    if args.setup:
        print(f"{VENV.relative_to(ROOT)} ready" + (f"; not installed: {', '.join(failed)}" if failed else ""))
        return 0
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown cases: {', '.join(unknown)}")
    if "none" not in cases:
        cases.insert(0, "none")
    rounds = max(1, min(args.rounds, args.calls, args.stream_calls))
    t0 = time.perf_counter()
    results = run(args.calls, args.stream_calls, args.warmup, rounds, cases, failed)
    results["seconds"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)
        print(f"({results['seconds']:.0f}s, {os.cpu_count()} CPUs, python {sys.version.split()[0]})")
    return 0
