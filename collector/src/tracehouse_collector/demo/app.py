"""`tracehouse demo`: fill a running collector with realistic data, through OTLP like any client.

Three parts, all sent by the Tracehouse SDK to the collector's OTLP/HTTP endpoint:

- an LLM agent app: the real `openai` client, instrumented by Tracehouse, talking to a fake
  OpenAI-compatible server started here on a local port (plain and streamed chat completions
  with usage, a tool call, one HTTP 500), with `@tracehouse.trace` steps, sessions, users and
  evaluation scores;
- a history of LLM calls over the last days: spans with explicit, backdated start and end
  times carrying the GenAI attributes, so charts have a time series;
- a few training runs (`tracehouse.run`): params, metric curves, a CSV artifact and a `.luml`
  model of a small scikit-learn classifier.

Everything the demo writes is derived from `--seed` (ids and wall-clock times aside).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import struct
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DEFAULT_SERVER = "http://127.0.0.1:4318"
MODELS = ("gpt-4o-mini", "gpt-4o", "o3-mini")
# Fake latency per model (seconds per answer) so latency charts tell the models apart.
_MODEL_DELAY = {"gpt-4o-mini": 0.01, "gpt-4o": 0.03, "o3-mini": 0.05}
FAIL_MARKER = "[simulate-outage]"


class DemoError(Exception):
    """A problem the user can fix (nothing listens, the server refused the data)."""


@dataclass
class Summary:
    llm_calls: int = 0
    agent_turns: int = 0
    errors: int = 0
    scores: int = 0
    sessions: set[str] = field(default_factory=set)
    history_spans: int = 0
    runs: int = 0
    metric_points: int = 0
    artifacts: int = 0
    models: int = 0
    notes: list[str] = field(default_factory=list)


# -- the collector ------------------------------------------------------------------------------


def check_server(server: str, api_key: str | None = None) -> None:
    req = urllib.request.Request(server.rstrip("/") + "/healthz")
    if api_key:
        req.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise DemoError(
                f"the collector at {server} wants an API key: pass --api-key or set TRACEHOUSE_API_KEY"
            ) from None
        raise DemoError(f"the collector at {server} answered /healthz with HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DemoError(
            f"no Tracehouse collector answers at {server} ({reason}); start one with `tracehouse serve`"
            " or point --server (TRACEHOUSE_SERVER) at one"
        ) from None


# -- a fake OpenAI-compatible server -------------------------------------------------------------

_WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


# The evaluation runs' task: label a review's sentiment. The fake models get it right with these
# rates, so the two prompt-eval runs differ in accuracy the way real models would.
_EVAL_REVIEWS = (
    ("I love this kettle, it boils in a minute", "positive"),
    ("Broke after two days, very disappointed", "negative"),
    ("Great value and fast delivery", "positive"),
    ("The lid leaks and support never answered", "negative"),
    ("Works exactly as described, would buy again", "positive"),
    ("Arrived scratched and the handle is loose", "negative"),
    ("Quiet, pretty and easy to clean", "positive"),
    ("Stopped working in a week, asking for a refund", "negative"),
)
_EVAL_PREFIX = "Label the sentiment (positive or negative): "
_MODEL_SKILL = {"gpt-4o-mini": 0.7, "gpt-4o": 0.9, "o3-mini": 0.8}


def _answer_for(messages: list[dict], model: str) -> str:
    question = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
    if question.startswith(_EVAL_PREFIX):
        truth = dict(_EVAL_REVIEWS).get(question[len(_EVAL_PREFIX) :], "positive")
        right = random.Random(question + model).random() < _MODEL_SKILL.get(model, 0.5)
        return truth if right else ("negative" if truth == "positive" else "positive")
    tool = next((m.get("content") for m in reversed(messages) if m.get("role") == "tool"), None)
    if tool:
        return f"According to the weather service: {tool}. ({model})"
    rng = random.Random(question + model)  # the same question gets the same answer
    openers = ("Short answer:", "In brief,", "Here is what the documents say:", "Good question.")
    return f"{rng.choice(openers)} {question.rstrip('?')} depends on the context; see the retrieved notes."


class _FakeOpenAI(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep the demo's output readable
        pass

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if not self.path.endswith("/chat/completions"):
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            return
        model = body.get("model", "gpt-4o-mini")
        messages = body.get("messages") or []
        prompt = " ".join(str(m.get("content") or "") for m in messages)
        if FAIL_MARKER in prompt:
            self._json(
                500,
                {
                    "error": {
                        "message": "The server had an error processing your request.",
                        "type": "server_error",
                    }
                },
            )
            return
        time.sleep(_MODEL_DELAY.get(model, 0.02))
        usage_in = _tokens(prompt) + 12
        wants_tool = (
            body.get("tools")
            and "weather" in prompt.lower()
            and not any(m.get("role") == "tool" for m in messages)
        )
        if wants_tool:
            city = "Lisbon" if "lisbon" in prompt.lower() else "Berlin"
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_weather_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": json.dumps({"city": city})},
                    }
                ],
            }
            self._json(200, self._completion(model, message, "tool_calls", usage_in, 18))
            return
        text = _answer_for(messages, model)
        usage_out = _tokens(text)
        if body.get("stream"):
            self._stream(
                model,
                text,
                usage_in,
                usage_out,
                bool((body.get("stream_options") or {}).get("include_usage")),
            )
            return
        self._json(
            200, self._completion(model, {"role": "assistant", "content": text}, "stop", usage_in, usage_out)
        )

    @staticmethod
    def _completion(model: str, message: dict, finish: str, usage_in: int, usage_out: int) -> dict:
        return {
            "id": "chatcmpl-demo",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": f"{model}-2025-01-01",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": usage_in,
                "completion_tokens": usage_out,
                "total_tokens": usage_in + usage_out,
            },
        }

    def _stream(self, model: str, text: str, usage_in: int, usage_out: int, with_usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        base = {
            "id": "chatcmpl-demo-stream",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": f"{model}-2025-01-01",
        }

        def send(payload: Any) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            self.wfile.write(f"data: {data}\n\n".encode())
            self.wfile.flush()

        words = text.split(" ")
        for i, word in enumerate(words):
            delta = {"content": word + (" " if i < len(words) - 1 else "")}
            if i == 0:
                delta["role"] = "assistant"
            send({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            time.sleep(0.002)
        send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if with_usage:
            usage = {
                "prompt_tokens": usage_in,
                "completion_tokens": usage_out,
                "total_tokens": usage_in + usage_out,
            }
            send({**base, "choices": [], "usage": usage})
        send("[DONE]")
        self.close_connection = True


def start_fake_openai() -> ThreadingHTTPServer:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name="demo-fake-openai", daemon=True).start()
    return httpd


# -- the agent app ----------------------------------------------------------------------------

_DOCS = {
    "refund": "Refunds are issued within 14 days of purchase to the original payment method.",
    "shipping": "Standard shipping takes 3-5 business days; express ships the next day.",
    "warranty": "Hardware carries a two year warranty covering manufacturing defects.",
    "password": "Passwords are reset from the sign-in page with the 'Forgot password' link.",
}

_SESSIONS = (
    # (session, user, questions); the weather question triggers a tool call, the marker a 500.
    ("sess-onboarding", "user-ada", ("How do I reset my password?", "What is the weather in Lisbon today?")),
    (
        "sess-orders",
        "user-grace",
        (
            "When will my shipping arrive?",
            "Can I get a refund for a broken item?",
            "Is my laptop under warranty?",
        ),
    ),
    (
        "sess-travel",
        "user-linus",
        ("What is the weather in Berlin this weekend?", f"Summarise my trip {FAIL_MARKER}"),
    ),
    ("sess-support", "user-ada", ("Does the warranty cover water damage?", "How long do refunds take?")),
)


def _agent_app(provider: Any, rng: random.Random, summary: Summary) -> None:
    import openai
    import tracehouse
    from tracehouse.instrumentors.openai import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    httpd = start_fake_openai()
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1", api_key="demo-key", max_retries=0
    )

    @tracehouse.trace(kind="retrieval", name="retrieve_documents")
    def retrieve_documents(question: str) -> list[str]:
        words = question.lower()
        return [text for key, text in _DOCS.items() if key in words] or [_DOCS["shipping"]]

    @tracehouse.trace(kind="tool", name="get_weather")
    def get_weather(city: str) -> str:
        temps = {"Lisbon": 21, "Berlin": 9}
        return f"{city}: {temps.get(city, 15)} C, light wind"

    def chat(model: str, messages: list[dict], stream: bool, tools: bool) -> tuple[str, list]:
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "temperature": 0.2}
        if tools:
            kwargs["tools"] = [_WEATHER_TOOL]
        summary.llm_calls += 1
        if stream:
            chunks = client.chat.completions.create(
                stream=True, stream_options={"include_usage": True}, **kwargs
            )
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), []
        resp = client.chat.completions.create(**kwargs)
        msg = resp.choices[0].message
        return msg.content or "", list(msg.tool_calls or [])

    @tracehouse.trace(kind="agent", name="support_agent")
    def support_agent(question: str, model: str, stream: bool) -> str:
        docs = retrieve_documents(question)
        messages = [
            {"role": "system", "content": "You are a helpful support agent. Context:\n" + "\n".join(docs)},
            {"role": "user", "content": question},
        ]
        text, tool_calls = chat(model, messages, stream=False, tools=True)
        if tool_calls:
            call = tool_calls[0]
            result = get_weather(**json.loads(call.function.arguments))
            messages.append({"role": "assistant", "content": None, "tool_calls": [call.model_dump()]})
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
            text, _ = chat(model, messages, stream=stream, tools=False)
        elif stream:
            text, _ = chat(model, messages, stream=True, tools=False)
        # Evaluations of this turn, attached to the agent span (the current one).
        tracehouse.score("relevance", round(rng.uniform(0.55, 1.0), 2))
        tracehouse.score("helpfulness", label=rng.choice(("good", "good", "ok", "bad")))
        summary.scores += 2
        return text

    try:
        turn = 0
        for session_id, user_id, questions in _SESSIONS:
            with tracehouse.context(session_id=session_id, user_id=user_id, app="support-bot"):
                for question in questions:
                    model = MODELS[turn % len(MODELS)]
                    stream = turn % 2 == 1
                    turn += 1
                    summary.agent_turns += 1
                    summary.sessions.add(session_id)
                    try:
                        support_agent(question, model, stream)
                    except openai.APIError:
                        summary.errors += 1  # recorded on the spans: the demo shows a failed call on purpose
        _prompt_eval_runs(client, summary)
    finally:
        httpd.shutdown()
        httpd.server_close()
        instrumentor.uninstrument()


def _prompt_eval_runs(client: Any, summary: Summary) -> None:
    """Two evaluation runs of a labelling prompt on two models: every call is an LLM span of the
    run, scored `accuracy` 1/0 against the expected label, so the runs compare on accuracy,
    latency, tokens and cost."""
    import tracehouse

    @tracehouse.trace(kind="chain", name="eval_example")
    def evaluate(model: str, review: str, truth: str) -> bool:
        resp = client.chat.completions.create(
            model=model, temperature=0.0, messages=[{"role": "user", "content": _EVAL_PREFIX + review}]
        )
        ok = (resp.choices[0].message.content or "").strip() == truth
        tracehouse.score("accuracy", 1.0 if ok else 0.0)  # on this example's span
        return ok

    for variant, model in (("v1", "gpt-4o-mini"), ("v2", "gpt-4o")):
        params = {"prompt": variant, "model": model, "temperature": 0.0, "examples": len(_EVAL_REVIEWS)}
        with tracehouse.run("demo-prompt-eval", name=f"prompt-{variant}-{model}", params=params) as run:
            correct = 0
            for step, (review, truth) in enumerate(_EVAL_REVIEWS):
                correct += evaluate(model, review, truth)
                summary.llm_calls += 1
                summary.scores += 1
                run.log_metric("running_accuracy", correct / (step + 1), step=step)
                summary.metric_points += 1
            run.log_metric("accuracy", correct / len(_EVAL_REVIEWS))
            summary.metric_points += 1
            summary.runs += 1


# -- backdated history --------------------------------------------------------------------------


def _history(provider: Any, rng: random.Random, days: int, summary: Summary) -> None:
    """LLM call spans spread over the last `days` days, with explicit start and end times."""
    import tracehouse
    from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

    tracer = provider.get_tracer("tracehouse.demo.history")
    now_ns = time.time_ns()
    day_ns = 86_400 * 10**9
    topics = list(_DOCS)
    for day in range(days, 0, -1):
        calls = rng.randint(12, 24)
        for i in range(calls):
            model = MODELS[rng.randrange(len(MODELS))]
            start = now_ns - day * day_ns + rng.randrange(day_ns - 600 * 10**9)
            base_ms = {"gpt-4o-mini": 450, "gpt-4o": 1100, "o3-mini": 2300}[model]
            duration_ns = int(rng.lognormvariate(math.log(base_ms), 0.35) * 1e6)
            question = f"Question about {rng.choice(topics)} #{i}"
            answer = f"Answer about {question.split()[2]}."
            input_tokens = rng.randint(80, 900)
            output_tokens = rng.randint(20, 400)
            failed = rng.random() < 0.04
            session = f"hist-{day}-{rng.randrange(4)}"
            with tracehouse.context(
                session_id=session, user_id=f"user-{rng.randrange(6)}", app="support-bot"
            ):
                root = tracer.start_span(
                    "support_agent",
                    kind=SpanKind.INTERNAL,
                    start_time=start,
                    attributes={
                        "gen_ai.operation.name": "invoke_agent",
                        "gen_ai.agent.name": "support_agent",
                    },
                )
                ctx = set_span_in_context(root)
                attrs = {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": model,
                    "gen_ai.response.model": f"{model}-2025-01-01",
                    "gen_ai.input.messages": json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": question}]}]
                    ),
                    "server.address": "api.openai.com",
                }
                if not failed:
                    attrs.update(
                        {
                            "gen_ai.usage.input_tokens": input_tokens,
                            "gen_ai.usage.output_tokens": output_tokens,
                            "gen_ai.response.finish_reasons": ["stop"],
                            "gen_ai.output.messages": json.dumps(
                                [
                                    {
                                        "role": "assistant",
                                        "parts": [{"type": "text", "content": answer}],
                                        "finish_reason": "stop",
                                    }
                                ]
                            ),
                        }
                    )
                child = tracer.start_span(
                    f"chat {model}",
                    context=ctx,
                    kind=SpanKind.CLIENT,
                    start_time=start + 2_000_000,
                    attributes=attrs,
                )
                if failed:
                    child.set_attribute("error.type", "InternalServerError")
                    child.set_status(Status(StatusCode.ERROR, "Error code: 500"))
                    root.set_status(Status(StatusCode.ERROR, "Error code: 500"))
                child.end(end_time=start + 2_000_000 + duration_ns)
                root.end(end_time=start + 4_000_000 + duration_ns)
            summary.history_spans += 2


# -- training runs ------------------------------------------------------------------------------


def _training_runs(rng: random.Random, workdir: Path, summary: Summary) -> None:
    import tracehouse

    configs = [
        {"learning_rate": 0.1, "batch_size": 32, "optimizer": "sgd", "epochs": 10},
        {"learning_rate": 0.03, "batch_size": 64, "optimizer": "adam", "epochs": 10},
        {"learning_rate": 0.01, "batch_size": 64, "optimizer": "adam", "epochs": 10},
    ]
    steps = 300
    best: tuple[float, Any] | None = None
    for idx, params in enumerate(configs):
        with tracehouse.run(
            "demo-classifier",
            name=f"{params['optimizer']}-lr{params['learning_rate']}",
            params=params,
            tags={"demo": "true"},
        ) as run:
            speed = 0.004 + 0.01 * params["learning_rate"] * (1 + idx)
            floor = 0.08 + 0.05 * rng.random()
            rows = ["step,loss,accuracy"]
            losses = []
            for step in range(steps):
                loss = floor + 2.2 * math.exp(-speed * step * 3) + rng.gauss(0, 0.02)
                losses.append(loss)
                acc = min(0.99, 1 - loss / 2.4 + rng.gauss(0, 0.01))
                run.log_metrics({"train/loss": round(loss, 5), "train/accuracy": round(acc, 5)}, step=step)
                if step % 30 == 29:
                    run.log_metric("val/loss", round(loss * 1.1 + rng.gauss(0, 0.01), 5), step=step)
                    rows.append(f"{step},{loss:.5f},{acc:.5f}")
                summary.metric_points += 2
            summary.metric_points += steps // 30
            csv_path = workdir / f"curve-{idx}.csv"
            csv_path.write_text("\n".join(rows) + "\n")
            run.log_artifact(csv_path, name="validation_curve.csv")
            png = workdir / f"loss-{idx}.png"
            png.write_bytes(_curve_png(losses))
            run.log_artifact(png, name="loss_curve.png")
            summary.artifacts += 1
            notes = workdir / f"notes-{idx}.txt"
            notes.write_text(f"Run {run.name}: {json.dumps(params)}\nfinal loss {loss:.4f}\n")
            run.log_artifact(notes, name="notes.txt")
            summary.artifacts += 2
            summary.runs += 1
            if best is None or loss < best[0]:
                best = (loss, run.id)
    _log_model(rng, workdir, summary)


def _curve_png(values: list[float], width: int = 240, height: int = 120) -> bytes:
    """A small line chart of `values` as a PNG (grey-scale, drawn pixel by pixel: the demo needs
    no imaging library)."""
    lo, hi = min(values), max(values)
    pixels = [[255] * width for _ in range(height)]
    previous = None
    for i, v in enumerate(values):
        x = round(i * (width - 1) / max(1, len(values) - 1))
        y = round((height - 1) * (1 - (v - lo) / ((hi - lo) or 1)))
        ys = range(min(y, previous), max(y, previous) + 1) if previous is not None else (y,)
        for yy in ys:  # a vertical run joins this point to the last one
            pixels[yy][x] = 40
        previous = y
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)  # filter type 0 per scanline

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey-scale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _log_model(rng: random.Random, workdir: Path, summary: Summary) -> None:
    """A tiny scikit-learn classifier packaged as a `.luml` model, in a run of its own."""
    try:
        import fnnx  # noqa: F401 - the .luml packaging needs it
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:
        summary.notes.append(f"skipped the .luml model: {exc.name} is not installed")
        return
    import tracehouse

    seed = rng.randrange(2**31)
    data_rng = random.Random(seed)
    xs = [[data_rng.gauss(0, 1), data_rng.gauss(0, 1), data_rng.gauss(0, 1)] for _ in range(240)]
    ys = [int(x[0] + 0.5 * x[1] - 0.3 * x[2] + data_rng.gauss(0, 0.3) > 0) for x in xs]
    params = {"model": "LogisticRegression", "C": 1.0, "features": 3, "seed": seed}
    with tracehouse.run("demo-classifier", name="logreg-final", params=params, tags={"demo": "true"}) as run:
        model = LogisticRegression(C=1.0).fit(xs[:180], ys[:180])
        run.log_metric("train/accuracy", float(model.score(xs[:180], ys[:180])))
        summary.runs += 1
        try:
            run.log_model(
                model, "demo-classifier", inputs=xs[:5], eval_data=(xs[180:], ys[180:]), metric="accuracy"
            )
        except (ImportError, ValueError, RuntimeError, OSError) as exc:  # packaging is optional for the demo
            summary.notes.append(f"skipped the .luml model: {exc}")
            return
        summary.models += 1
        summary.artifacts += 1


# -- the whole demo -----------------------------------------------------------------------------


def run_demo(server: str, seed: int = 7, days: int = 7, api_key: str | None = None) -> Summary:
    """Send the demo data to the collector at `server`; returns what was sent."""
    server = server.rstrip("/")
    check_server(server, api_key)
    summary = Summary()
    workdir = Path(tempfile.mkdtemp(prefix="tracehouse-demo-"))
    # The SDK reads its endpoint and spool directory from the environment; set them before use.
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = server
    os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    for signal in ("TRACES", "METRICS", "LOGS"):  # the demo's --server wins over a shell's settings
        os.environ.pop(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", None)
        os.environ.pop(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL", None)
    os.environ.pop("OTEL_SDK_DISABLED", None)
    os.environ["TRACEHOUSE_SPOOL_DIR"] = str(workdir / "spool")
    os.environ.setdefault("OTEL_METRIC_EXPORT_INTERVAL", "1000")
    if api_key:
        os.environ["TRACEHOUSE_API_KEY"] = api_key
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None

    import tracehouse
    from opentelemetry import metrics, trace

    tracehouse.init(service_name="demo-support-bot", endpoint=server, headers=headers, instrument=None)
    provider = trace.get_tracer_provider()
    rng = random.Random(seed)
    try:
        try:
            import openai  # noqa: F401
        except ImportError:
            summary.notes.append(
                "openai is not installed: only the backdated history spans were sent, no live agent"
            )
        else:
            _agent_app(provider, random.Random(rng.random()), summary)
        _history(provider, random.Random(rng.random()), days, summary)
        _training_runs(random.Random(rng.random()), workdir, summary)
    finally:
        try:
            _flush(provider, metrics.get_meter_provider())
        finally:
            _remove_tree(workdir, summary)
    return summary


def _flush(provider: Any, meter_provider: Any) -> None:
    from tracehouse import _run, _score

    _run.end_unfinished_runs()
    ok = all(
        (
            provider.force_flush(30_000) if hasattr(provider, "force_flush") else True,
            _score.force_flush(30_000),
            _run.flush(60.0),
            meter_provider.force_flush(10_000) if hasattr(meter_provider, "force_flush") else True,
        )
    )
    if not ok:
        raise DemoError("not everything reached the collector in time (see the messages above)")


def _remove_tree(workdir: Path, summary: Summary) -> None:
    import shutil

    spool = workdir / "spool"
    left = [p for p in spool.rglob("*.pb")] if spool.exists() else []
    if left:
        summary.notes.append(f"{len(left)} spool files were not delivered and are dropped")
    shutil.rmtree(workdir, ignore_errors=True)


def format_summary(summary: Summary, server: str) -> str:
    s = server.rstrip("/")
    lines = [
        f"tracehouse demo: sent to {s}",
        f"  agent app     {summary.agent_turns} turns in {len(summary.sessions)} sessions, {summary.llm_calls} LLM calls "
        f"({', '.join(MODELS)}), {summary.errors} failed on purpose, {summary.scores} scores",
        f"  history       {summary.history_spans} backdated spans",
        f"  runs          {summary.runs} runs, {summary.metric_points} metric points, {summary.artifacts} artifacts, "
        f"{summary.models} model",
        *(f"  note: {note}" for note in summary.notes),
        "",
        f"Open the UI:  {s}/",
        "Try:",
        f"  tracehouse traces list --server {s}",
        f"  tracehouse query latency --by model --server {s}",
        f"  tracehouse runs list --server {s}",
        "(the collector writes in batches: give it a second or two before querying)",
    ]
    return "\n".join(lines) + "\n"


def empty_store_hint(store: Any, url: str) -> str | None:
    """For `tracehouse serve`'s banner: a line suggesting the demo when the store holds nothing yet."""
    try:
        for table in ("otel_traces", "runs"):
            _, rows = store.query(f"SELECT 1 FROM {table} LIMIT 1")
            if rows:
                return None
    except Exception:  # a store that is down or not migrated yet: say nothing rather than guess
        return None
    url = url.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://127.0.0.1:")
    server = "" if url == DEFAULT_SERVER else f" --server {url}"
    return f"  Empty store: fill it with example data with `tracehouse demo{server}`"


DEMO_QUESTION = "The store is empty. Load the demo data into it now? [y/N] "


async def offer(url: str, api_key: str | None) -> None:
    """`serve --offer-demo` on an empty store, in a terminal: ask, and on yes run `tracehouse demo`
    against this collector in a child process (the demo's SDK setup stays out of the server)."""
    import asyncio
    import sys

    url = url.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://127.0.0.1:")
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[str] = loop.create_future()

    def read() -> None:  # a daemon thread: an unanswered question never holds up shutdown
        try:
            line = sys.stdin.readline()
        except (OSError, ValueError):
            line = ""
        with contextlib.suppress(RuntimeError):  # the server stopped before the answer came
            loop.call_soon_threadsafe(lambda: reply.done() or reply.set_result(line))

    print(DEMO_QUESTION, end="", flush=True)
    threading.Thread(target=read, name="demo-offer", daemon=True).start()
    answer = await reply
    if answer.strip().lower() not in ("y", "yes"):
        print("  No demo data. Run `tracehouse demo` later to add it.", flush=True)
        return
    env = dict(os.environ)
    if api_key:
        env["TRACEHOUSE_API_KEY"] = api_key
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tracehouse_collector",
        "demo",
        "--server",
        url,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
    )
    code = await proc.wait()
    print("  Demo data loaded." if code == 0 else f"  The demo failed (exit status {code}).", flush=True)
