"""A fake OpenAI-compatible server on a local port: plain and streamed chat completions with
usage, a tool call, and an HTTP 500 for a question carrying FAIL_MARKER."""

from __future__ import annotations

import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODELS = ("gpt-4o-mini", "gpt-4o", "o3-mini")
# Fake latency per model (seconds per answer) so latency charts tell the models apart.
_MODEL_DELAY = {"gpt-4o-mini": 0.01, "gpt-4o": 0.03, "o3-mini": 0.05}
FAIL_MARKER = "[simulate-outage]"


_WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def approx_tokens(text: str) -> int:
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
        usage_in = approx_tokens(prompt) + 12
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
        usage_out = approx_tokens(text)
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
