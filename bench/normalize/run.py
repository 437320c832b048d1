"""Per-span cost of the normaliser (`processors/normalize`): `context_ids` and `extract`, as the
LLM processor calls them on every span, in nanoseconds per span; and of a decoding worker's
whole path per export request (parse -> rows -> LLM processor -> encoded JSON rows), stage by
stage, on bench/ingest's generated LLM spans.

Spans are attribute maps of the shapes real producers emit (a plain HTTP span, and one model
call from each convention), and a mix of 80% plain spans and 20% model calls. Each kind is timed
in CPU time (so other processes on the machine blur it less) as the best of several rounds.
With `--baseline DIR` every round runs twice, in child processes taking turns: one importing
`tracehouse_collector` from DIR (e.g. an older checkout's `collector/src`), one from this
environment; the two are printed side by side with their ratio.

    python -m bench.normalize
    git archive HEAD~3 collector/src | tar -x -C /tmp/before
    python -m bench.normalize --baseline /tmp/before/collector/src
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

_USAGE_OPENAI = {"prompt_tokens": 1200, "completion_tokens": 80, "total_tokens": 1280}

SPANS: dict[str, tuple[str, dict[str, str]]] = {
    "plain http": (
        "GET /api/orders",
        {
            "http.request.method": "GET",
            "url.path": "/api/orders",
            "http.response.status_code": "200",
            "server.address": "orders.internal",
            "user.id": "u-17",
        },
    ),
    "otel genai": (
        "chat gpt-4o",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": "1200",
            "gen_ai.usage.output_tokens": "80",
            "gen_ai.usage.cache_read.input_tokens": "1024",
            "gen_ai.response.finish_reasons": '["stop"]',
            "server.address": "api.openai.com",
            "gen_ai.conversation.id": "c-1",
        },
    ),
    "openllmetry": (
        "anthropic.chat",
        {
            "llm.request.type": "chat",
            "gen_ai.system": "Anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.response.model": "claude-sonnet-4-5-20250929",
            "gen_ai.usage.prompt_tokens": "1300",
            "gen_ai.usage.completion_tokens": "80",
            "llm.usage.total_tokens": "1380",
            "gen_ai.usage.cache_read_input_tokens": "1024",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "hello",
            "traceloop.association.properties.session_id": "s-1",
        },
    ),
    "openinference": (
        "ChatCompletion",
        {
            "openinference.span.kind": "LLM",
            "llm.provider": "openai",
            "llm.system": "openai",
            "llm.model_name": "gpt-4o-mini",
            "llm.token_count.prompt": "1200",
            "llm.token_count.completion": "80",
            "llm.token_count.total": "1280",
            "llm.token_count.prompt_details.cache_read": "1024",
            "input.value": json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
            "session.id": "s-1",
        },
    ),
    "vercel ai": (
        "ai.generateText.doGenerate",
        {
            "ai.operationId": "ai.generateText.doGenerate",
            "ai.model.id": "claude-3-5-haiku-latest",
            "ai.model.provider": "anthropic.messages",
            "ai.usage.promptTokens": "900",
            "ai.usage.completionTokens": "80",
            "ai.usage.cachedInputTokens": "300",
            "ai.response.providerMetadata": json.dumps({"anthropic": {"cacheCreationInputTokens": 20}}),
            "gen_ai.system": "anthropic.messages",
            "gen_ai.request.model": "claude-3-5-haiku-latest",
            "gen_ai.usage.input_tokens": "900",
            "gen_ai.usage.output_tokens": "80",
        },
    ),
    "langfuse": (
        "generation",
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "gpt-4o",
            "langfuse.observation.usage_details": json.dumps(
                {"input": 176, "input_cached_tokens": 1024, "output": 80}
            ),
            "langfuse.observation.cost_details": json.dumps({"input": 0.001, "output": 0.0008}),
            "langfuse.session.id": "s-1",
        },
    ),
    "mlflow": (
        "ChatOpenAI",
        {
            "mlflow.spanType": '"CHAT_MODEL"',
            "mlflow.llm.model": '"gpt-4o"',
            "mlflow.llm.provider": '"openai"',
            "mlflow.chat.tokenUsage": json.dumps(
                {"input_tokens": 1200, "output_tokens": 80, "total_tokens": 1280}
            ),
            "mlflow.traceRequestId": '"tr-1"',
            "mlflow.trace.session": '"s-1"',
        },
    ),
    "agent (non-model)": (
        "invoke_agent support",
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "support",
            "gen_ai.usage.input_tokens": "5000",
            "gen_ai.usage.output_tokens": "400",
        },
    ),
    "stream, no usage": (
        "chat gpt-4o",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "Hi " * 40}]}]
            ),
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "Yo"}]}]
            ),
        },
    ),
}
_MODEL_KINDS = [k for k in SPANS if k != "plain http"]


def _mix() -> list[tuple[str, dict[str, str]]]:
    """100 spans: 80 plain, 20 model calls spread over the conventions."""
    calls = [SPANS[_MODEL_KINDS[i % len(_MODEL_KINDS)]] for i in range(20)]
    return [SPANS["plain http"]] * 80 + calls


def _measure_worker(rounds: int, n_requests: int) -> dict[str, float]:
    """ns/span of each stage of `pipeline.process` (spool file writing aside), best of rounds;
    only interfaces older checkouts have too, so --baseline compares like with like."""
    from tracehouse_collector.processors import encoding, llm, otlp_decode, pipeline
    from tracehouse_collector.processors.encoding import encode_json
    from tracehouse_collector.processors.rows import ROW_BUILDERS, Limits

    from bench.ingest.run import build_requests

    # The Native encoding (TRACEHOUSE_INSERT_FORMAT=native) is timed apart, outside the total;
    # a checkout from before it times 0 there.
    encode_native = getattr(encoding, "encode_native", lambda table, rows: b"")
    requests = build_requests(n_requests, 512)
    pricer = pipeline.pricer(None)
    spans = 512 * n_requests
    best = dict.fromkeys(("parse", "rows", "enrich", "encode", "encode native"), float("inf"))
    for round_no in range(rounds + 1):  # round 0 warms the caches and is not counted
        took = dict.fromkeys(best, 0)
        for body in requests:
            t0 = time.process_time_ns()
            message = otlp_decode.parse("traces", body, "protobuf")
            t1 = time.process_time_ns()
            rows = ROW_BUILDERS["traces"](message, Limits(), None)
            t2 = time.process_time_ns()
            llm.enrich(rows, pricer)
            t3 = time.process_time_ns()
            encode_json(rows.tables["otel_traces"])
            t4 = time.process_time_ns()
            encode_native("otel_traces", rows.tables["otel_traces"])
            t5 = time.process_time_ns()
            for stage, ns in zip(took, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                took[stage] += ns
        if round_no:
            best = {stage: min(best[stage], took[stage] / spans) for stage in best}
    out = {f"worker: {stage}": ns for stage, ns in best.items()}
    out["worker: total"] = sum(ns for stage, ns in best.items() if stage != "encode native")
    return out


def _measure(rounds: int, loops: int) -> dict[str, float]:
    from tracehouse_collector.processors import normalize

    extract, context_ids = normalize.extract, normalize.context_ids
    resource = {"service.name": "bench", "telemetry.sdk.language": "python"}
    cases = {kind: [span] for kind, span in SPANS.items()}
    cases["mix (80% plain)"] = _mix()
    result = {}
    for kind, spans in cases.items():
        n = loops // len(spans) or 1
        best = float("inf")
        for _ in range(rounds):
            t = time.process_time_ns()
            for _ in range(n):
                for name, attrs in spans:
                    context_ids(attrs, resource)
                    extract(attrs, resource, name)
            best = min(best, (time.process_time_ns() - t) / (n * len(spans)))
        result[kind] = best
    return result


def _child(src: str | None, loops: int, worker_requests: int) -> dict[str, float]:
    """One round in a fresh interpreter importing the collector from `src` (None: as we do)."""
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.pathsep.join([src, os.getcwd()])
    cmd = [sys.executable, "-m", "bench.normalize", "--json", "--rounds", "3", "--loops", str(loops)]
    cmd += ["--worker-requests", str(worker_requests)]
    return json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.normalize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loops", type=int, default=10_000, help="span calls per round and kind")
    parser.add_argument(
        "--worker-requests",
        type=int,
        default=8,
        help="bench/ingest requests of 512 LLM spans each for the worker-path case (0: skip it)",
    )
    parser.add_argument("--baseline", metavar="DIR", help="collector sources to compare against")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # a child's output
    args = parser.parse_args(argv)

    def measure() -> dict[str, float]:
        result = _measure(args.rounds, args.loops)
        if args.worker_requests > 0:
            result.update(_measure_worker(args.rounds, args.worker_requests))
        return result

    if args.json:
        print(json.dumps(measure()))
        return 0
    if not args.baseline:
        current, baseline = measure(), None
    else:
        runs: dict[str | None, list[dict[str, float]]] = {args.baseline: [], None: []}
        for _ in range(args.rounds):
            for src, results in runs.items():
                results.append(_child(src, args.loops, args.worker_requests))
        baseline, current = ({k: min(r[k] for r in results) for k in results[0]} for results in runs.values())
    print(f"{'span':<20} {'ns/span':>9}" + (f" {'baseline':>9} {'ratio':>6}" if baseline else ""))
    for kind, ns in current.items():
        line = f"{kind:<20} {ns:>9.0f}"
        if baseline:
            line += f" {baseline[kind]:>9.0f} {ns / baseline[kind]:>6.2f}"
        print(line)
    return 0
