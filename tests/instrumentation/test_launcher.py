"""`opentelemetry-instrument python app.py`, the standard OpenTelemetry launcher, with Tracehouse
installed and no TRACEHOUSE_* variable: an unmodified app is traced into a real collector, and
the launcher imports no client library the app does not import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from genai_support import fake_api
from helpers import unique, wait_for

LAUNCHER = str(Path(sys.executable).parent / "opentelemetry-instrument")

COMPLETION = {
    "id": "chatcmpl-launch",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-launch-2025-01-01",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
}


class _OpenAI(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        raw = json.dumps(COMPLETION).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture(scope="module")
def api() -> Iterator[Any]:
    yield from fake_api(_OpenAI, "/v1")


APP = textwrap.dedent(
    """
    import sys
    import openai
    from opentelemetry import trace

    client = openai.OpenAI(base_url=sys.argv[1], api_key="x", max_retries=0)
    with trace.get_tracer("app").start_as_current_span("handle request"):
        r = client.chat.completions.create(model="gpt-launch", messages=[{"role": "user", "content": "hi"}])
    print(r.choices[0].message.content)
    """
)

# Every client library and training framework Tracehouse can instrument, by import name.
INSTRUMENTABLE = [
    "openai", "anthropic", "google.genai", "litellm", "mistralai", "ollama", "botocore",
    "keras", "lightning", "sklearn", "transformers", "torch",
]  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TRACEHOUSE_", "OTEL_"))}
    return {**base, **extra}


def _launch(script: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [LAUNCHER, sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out


def test_unmodified_app_is_traced_under_the_launcher(collector, api, tmp_path):
    script = tmp_path / "app.py"
    script.write_text(APP)
    service = unique("launcher")
    env = _env(OTEL_EXPORTER_OTLP_ENDPOINT=collector.http_url, OTEL_SERVICE_NAME=service)
    out = _launch(script, api.base_url, env=env)
    assert out.stdout.strip() == "Hi!"
    rows = wait_for(
        lambda: collector.sql(
            "SELECT SpanName, ParentSpanId = '' AS root, GenAIRequestModel, InputTokens, OutputTokens "
            f"FROM otel_traces WHERE ServiceName = '{service}' ORDER BY SpanName"
        )
        if len(collector.sql(f"SELECT 1 FROM otel_traces WHERE ServiceName = '{service}'")) == 2
        else None,
        timeout=20,
    )
    # The app's own span (plain OpenTelemetry API: the configurator set the SDK up at launch)
    # and the LLM call beneath it.
    assert rows == [
        {"SpanName": "chat gpt-launch", "root": 0, "GenAIRequestModel": "gpt-launch", "InputTokens": 7, "OutputTokens": 2},
        {"SpanName": "handle request", "root": 1, "GenAIRequestModel": "", "InputTokens": 0, "OutputTokens": 0},
    ]  # fmt: skip


def test_launcher_respects_its_own_disable_switch(collector, api, tmp_path):
    script = tmp_path / "app.py"
    script.write_text(APP)
    service = unique("launcher-off")
    env = _env(
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.http_url,
        OTEL_SERVICE_NAME=service,
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="tracehouse_openai",
    )
    _launch(script, api.base_url, env=env)
    wait_for(lambda: collector.sql(f"SELECT 1 FROM otel_traces WHERE ServiceName = '{service}'"), timeout=20)
    names = collector.sql(f"SELECT SpanName FROM otel_traces WHERE ServiceName = '{service}'")
    assert names == [{"SpanName": "handle request"}]  # the app's span only: openai was left alone


def test_launcher_imports_no_library_the_app_does_not(tmp_path):
    script = tmp_path / "idle.py"
    script.write_text(f"import sys\nprint([m for m in {INSTRUMENTABLE!r} if m in sys.modules])\n")
    # No collector needed: nothing is exported by an app that makes no span.
    out = _launch(script, env=_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9"))
    assert out.stdout.strip() == "[]", out.stdout
    # The libraries are installed, so the emptiness above is the launcher's laziness, not absence.
    present = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; print(all(u.find_spec(m.split('.')[0]) for m in "
         f"{INSTRUMENTABLE!r}))"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert present.stdout.strip() == "True", present.stderr


def test_every_instrumentor_has_a_deferring_entry_point():
    import tomllib
    from importlib import import_module

    from tracehouse.instrumentors import INSTRUMENTORS

    pyproject = Path(__file__).parents[2] / "instrumentation" / "pyproject.toml"
    groups = tomllib.loads(pyproject.read_text())["project"]["entry-points"]
    registered = groups["opentelemetry_instrumentor"]
    assert set(registered) == {f"tracehouse_{name}" for name in INSTRUMENTORS}
    for name in INSTRUMENTORS:
        module, _, cls = registered[f"tracehouse_{name}"].partition(":")
        assert getattr(import_module(module), cls).library == name
    assert groups["opentelemetry_configurator"] == {"tracehouse": "tracehouse._launcher:Configurator"}
