"""The tracehouse SDK: activation, init, @trace, context — with real OpenTelemetry SDK parts."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import uuid

import pytest
import tracehouse
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tracehouse._context import ContextSpanProcessor


@pytest.fixture(scope="module")
def spans():
    """A global SDK provider for this process (OpenTelemetry allows setting it once)."""
    exporter = InMemorySpanExporter()
    provider = otel_trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        otel_trace.set_tracer_provider(provider)
    provider.add_span_processor(ContextSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter


@pytest.fixture
def finished(spans):
    spans.clear()
    return spans


# -- @trace ------------------------------------------------------------------------------------


def test_trace_sync_nests_and_records_kind(finished):
    @tracehouse.trace(kind="tool")
    def lookup(x):
        return x * 2

    @tracehouse.trace(kind="agent", name="support-agent")
    def agent():
        return lookup(21)

    assert agent() == 42
    tool, outer = finished.get_finished_spans()
    # Named and attributed as the GenAI conventions' agent and tool spans.
    assert outer.name == "invoke_agent support-agent"
    assert outer.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert outer.attributes["gen_ai.agent.name"] == "support-agent"
    assert tool.name == "execute_tool lookup"
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "lookup"
    assert tool.attributes["gen_ai.tool.type"] == "function"
    assert (tool.kind, outer.kind) == (otel_trace.SpanKind.INTERNAL, otel_trace.SpanKind.INTERNAL)
    assert tool.parent.span_id == outer.context.span_id


def test_trace_llm_is_a_client_chat_span_with_provider_and_model(finished):
    @tracehouse.trace(kind="llm", attributes={"gen_ai.provider.name": "vllm", "gen_ai.request.model": "m-1"})
    def generate():
        return "ok"

    @tracehouse.trace(kind="llm")
    def bare():
        return "ok"

    generate(), bare()
    named, unnamed = finished.get_finished_spans()
    assert (named.name, named.kind) == ("chat m-1", otel_trace.SpanKind.CLIENT)
    assert named.attributes["gen_ai.provider.name"] == "vllm"
    assert named.attributes["gen_ai.operation.name"] == "chat"
    assert (unnamed.name, unnamed.attributes["gen_ai.provider.name"]) == ("chat", "unknown")


def test_trace_records_errors_and_reraises_the_same_exception(finished):
    boom = ValueError("bad input")

    @tracehouse.trace
    def fails():
        raise boom

    with pytest.raises(ValueError) as err:
        fails()
    assert err.value is boom
    (span,) = finished.get_finished_spans()
    assert span.status.status_code == otel_trace.StatusCode.ERROR
    assert span.attributes["error.type"] == "ValueError"
    assert [e.name for e in span.events] == ["exception"]


def test_trace_async(finished):
    @tracehouse.trace(kind="retrieval")
    async def fetch(q):
        await asyncio.sleep(0)
        return [q]

    assert asyncio.run(fetch("x")) == ["x"]
    (span,) = finished.get_finished_spans()
    assert span.attributes["gen_ai.operation.name"] == "retrieval"


def test_trace_generator_covers_iteration_and_does_not_leak_context(finished):
    tracer = otel_trace.get_tracer("test")

    @tracehouse.trace(kind="workflow")
    def steps():
        for i in range(3):
            with tracer.start_as_current_span(f"step-{i}"):
                pass
            yield i

    with tracer.start_as_current_span("consumer") as consumer:
        seen = []
        for i in steps():
            # Between items the consumer's own span is current, not the generator's.
            assert otel_trace.get_current_span() is consumer
            seen.append(i)
    assert seen == [0, 1, 2]
    by_name = {s.name: s for s in finished.get_finished_spans()}
    gen_span = next(s for n, s in by_name.items() if n.endswith("steps"))
    assert by_name["step-1"].parent.span_id == gen_span.context.span_id
    assert gen_span.parent.span_id == by_name["consumer"].context.span_id


def test_trace_generator_early_close_ends_span_once(finished):
    closed = []

    @tracehouse.trace
    def numbers():
        try:
            yield from range(100)
        finally:
            closed.append(True)

    gen = numbers()
    assert next(gen) == 0
    gen.close()
    assert closed == [True]
    (span,) = finished.get_finished_spans()
    assert span.end_time is not None
    assert span.status.status_code != otel_trace.StatusCode.ERROR


def test_trace_async_generator(finished):
    @tracehouse.trace(kind="llm")
    async def tokens():
        for t in ("a", "b"):
            yield t

    async def consume():
        return [t async for t in tokens()]

    assert asyncio.run(consume()) == ["a", "b"]
    (span,) = finished.get_finished_spans()
    assert span.attributes["gen_ai.operation.name"] == "chat"


def test_trace_generator_return_value_and_send(finished):
    @tracehouse.trace
    def echo():
        got = yield "ready"
        return f"got {got}"

    gen = echo()
    assert next(gen) == "ready"
    with pytest.raises(StopIteration) as stop:
        gen.send("x")
    assert stop.value.value == "got x"


def test_trace_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown kind"):
        tracehouse.trace(kind="robot")


# -- context -----------------------------------------------------------------------------------


def test_context_attaches_session_user_metadata(finished):
    tracer = otel_trace.get_tracer("test")
    with tracehouse.context(session_id="s-1", user_id="u-1", team="cv", retries=3):
        with tracer.start_as_current_span("inside"):
            pass
        with tracehouse.context(user_id="u-2"), tracer.start_as_current_span("nested"):
            pass
    with tracer.start_as_current_span("outside"):
        pass
    spans = {s.name: s.attributes for s in finished.get_finished_spans()}
    assert spans["inside"]["session.id"] == "s-1"
    assert spans["inside"]["gen_ai.conversation.id"] == "s-1"  # the GenAI conventions' name
    assert spans["inside"]["user.id"] == "u-1"
    assert spans["inside"]["tracehouse.metadata.team"] == "cv"
    assert spans["inside"]["tracehouse.metadata.retries"] == "3"
    assert (spans["nested"]["session.id"], spans["nested"]["user.id"]) == ("s-1", "u-2")
    assert "session.id" not in spans["outside"]


# -- activation, in fresh interpreters ----------------------------------------------------------


def _run(code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TRACEHOUSE_", "OTEL_"))}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=clean,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


PROBE = """
    import sys
    heavy = "opentelemetry.sdk.trace" in sys.modules or "wrapt" in sys.modules
    from opentelemetry import trace
    import tracehouse._auto as auto
    print(type(trace.get_tracer_provider()).__name__, sorted(auto._hooked), "openai" in sys.modules, heavy)
"""


def test_variable_activates_without_importing_client_libraries_or_the_sdk():
    p = _run(PROBE, {"TRACEHOUSE_INSTRUMENT": "1"})
    assert p.returncode == 0, p.stderr
    # Hooks are in place; the SDK waits for the first instrumented call, clients are untouched.
    from tracehouse.instrumentors import INSTRUMENTORS

    assert p.stdout.split() == ["ProxyTracerProvider", *str(sorted(INSTRUMENTORS)).split(), "False", "False"]


def test_zero_code_sets_up_on_first_use_or_attaches_to_the_apps_provider():
    first_use = """
        import tracehouse
        from opentelemetry import trace
        @tracehouse.trace
        def step():
            return trace.get_current_span().is_recording()
        print(step(), type(trace.get_tracer_provider()).__name__)
    """
    p = _run(first_use, {"TRACEHOUSE_INSTRUMENT": "1", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert p.stdout.split() == ["True", "TracerProvider"], p.stderr
    app_setup = """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        mine = TracerProvider()
        trace.set_tracer_provider(mine)  # the application's own set-up, after start-up
        import tracehouse
        @tracehouse.trace
        def step():
            return trace.get_current_span().is_recording()
        print(step(), trace.get_tracer_provider() is mine)
    """
    p = _run(app_setup, {"TRACEHOUSE_INSTRUMENT": "1"})
    assert p.stdout.split() == ["True", "True"], p.stderr
    assert "Overriding" not in p.stderr


def test_unset_or_disabled_does_nothing():
    code = "import sys; print('tracehouse_bootstrap' in sys.modules, 'opentelemetry.sdk' in sys.modules)"
    assert _run(code, {}).stdout.split() == ["False", "False"]
    assert _run(PROBE, {"TRACEHOUSE_INSTRUMENT": "0"}).stdout.split()[0] == "ProxyTracerProvider"
    assert (
        _run(PROBE, {"TRACEHOUSE_INSTRUMENT": "1", "OTEL_SDK_DISABLED": "true"}).stdout.split()[0]
        == "ProxyTracerProvider"
    )


def test_instrumentor_lists_and_disabled_instrumentations():
    p = _run(PROBE, {"TRACEHOUSE_INSTRUMENT": "openai,nosuchlib"})
    assert p.stdout.split()[1] == "['openai']"
    assert "unknown instrumentors ['nosuchlib']" in p.stderr
    from tracehouse.instrumentors import INSTRUMENTORS

    p = _run(
        PROBE,
        {"TRACEHOUSE_INSTRUMENT": "all", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": ",".join(INSTRUMENTORS)},
    )
    assert p.stdout.split()[1] == "[]"


def test_init_attaches_to_an_existing_provider():
    code = """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        mine = TracerProvider()
        trace.set_tracer_provider(mine)
        import tracehouse
        tracehouse.init(instrument=None)
        tracehouse.init(instrument=None)
        print(trace.get_tracer_provider() is mine, len(mine._active_span_processor._span_processors))
    """
    p = _run(code, {})
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["True", "1"]  # our context processor, added once, no second exporter


def test_zero_code_spans_flushed_at_exit_and_after_fork(collector):
    service = f"sdk-{uuid.uuid4().hex[:8]}"
    code = """
        import os, sys
        import tracehouse

        @tracehouse.trace(name="parent-work")
        def parent_work():
            pass

        @tracehouse.trace(name="child-work")
        def child_work():
            pass

        parent_work()
        pid = os.fork()
        if pid == 0:
            child_work()
            sys.exit(0)  # normal exit: the SDK flushes in the child too
        os.waitpid(pid, 0)
    """
    p = _run(
        code,
        {
            "TRACEHOUSE_INSTRUMENT": "1",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_url,
            "OTEL_SERVICE_NAME": service,
        },
    )
    assert p.returncode == 0, p.stderr
    names = sorted(
        r["SpanName"]
        for r in collector.sql(f"SELECT SpanName FROM otel_traces WHERE ServiceName = '{service}'")
    )
    assert names == ["child-work", "parent-work"]


def test_init_from_code_with_endpoint_and_service(collector):
    service = f"sdk-{uuid.uuid4().hex[:8]}"
    code = f"""
        import tracehouse
        tracehouse.init(service_name="{service}", endpoint="{collector.http_url}", instrument=None)
        with tracehouse.context(session_id="sess-9"):
            @tracehouse.trace(kind="tool")
            def search(q):
                return q
            search("x")
    """
    p = _run(code, {})
    assert p.returncode == 0, p.stderr
    rows = collector.sql(
        f"SELECT SpanName, SessionId, SpanAttributes['gen_ai.operation.name'] AS op FROM otel_traces WHERE ServiceName = '{service}'"
    )
    assert len(rows) == 1
    assert rows[0]["SessionId"] == "sess-9"
    assert rows[0]["op"] == "execute_tool"


def test_metrics_go_to_the_collector_too(collector):
    service = f"sdk-{uuid.uuid4().hex[:8]}"
    code = f"""
        import tracehouse
        from opentelemetry import metrics
        tracehouse.init(service_name="{service}", endpoint="{collector.http_url}", instrument=None)
        histogram = metrics.get_meter("app").create_histogram("gen_ai.client.token.usage", unit="{{token}}")
        histogram.record(42, {{"gen_ai.token.type": "input"}})
    """
    p = _run(code, {})
    assert p.returncode == 0, p.stderr
    rows = collector.sql(
        f"SELECT MetricName, Count, Sum FROM otel_metrics_histogram WHERE ServiceName = '{service}'"
    )
    assert [(r["MetricName"], r["Count"], r["Sum"]) for r in rows] == [("gen_ai.client.token.usage", 1, 42.0)]
