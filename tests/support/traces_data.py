"""Traces of known shape, sent through a real collector by the real OpenTelemetry SDK, for the
traces/sessions tests (test_traces.py, test_grpc_query.py).

Every span has explicit start and end times, so offsets, durations and latencies are known
exactly. A conversation (one session, one user) of three turns:

  turn 0   agent.turn [Server] 0..2000 ms, session.id + user.id on this root span only
             chat gpt-4o-mini   100..900 ms   tokens 100/20, cost 0.0015, score relevance 0.8
             (orphan) cache.lookup 1200..1250 ms, its parent span never arrives
  turn 1   agent.turn 0..3000 ms
             chat gpt-4o-mini   100..700 ms   asks for tool get_weather
             execute_tool get_weather 800..1000 ms
             chat gpt-4o-mini   1100..2900 ms tokens 101/21 ... answers
  turn 2   agent.turn 0..1500 ms, Error
             chat gpt-4o-mini   100..600 ms
             db.query 700..1400 ms, Error with an exception event

Plus PAGING_TRACES single-span traces of another service for paging, some sharing a start time.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

MS = 1_000_000
CALL_COST = Decimal("0.0015")
PAGING_TRACES = 7


@dataclass
class Scenario:
    service: str
    paging_service: str
    session_id: str
    user_id: str
    base_ns: int
    turn_ids: list[str] = field(default_factory=list)  # trace ids of the turns, in time order
    questions: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    paging_ids: list[str] = field(default_factory=list)
    pager_user: str = ""
    old_trace_id: str = ""  # a trace days older, in another partition
    orphan_span_id: str = ""


def _messages(role: str, text: str, **extra) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}], **extra}])


def _llm_attrs(i: int, question: str, answer: str | None, tool_call: bool = False) -> dict:
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": 100 + i,
        "gen_ai.usage.output_tokens": 20 + i,
        "gen_ai.usage.cost": str(CALL_COST),
        "gen_ai.input.messages": json.dumps(
            [
                {"role": "system", "parts": [{"type": "text", "content": "You are a weather bot."}]},
                {"role": "user", "parts": [{"type": "text", "content": question}]},
            ]
        ),
    }
    if tool_call:
        attrs["gen_ai.output.messages"] = json.dumps(
            [
                {
                    "role": "assistant",
                    "parts": [
                        {
                            "type": "tool_call",
                            "id": "call_1",
                            "name": "get_weather",
                            "arguments": {"city": "Oslo"},
                        }
                    ],
                    "finish_reason": "tool_call",
                }
            ]
        )
    elif answer is not None:
        attrs["gen_ai.output.messages"] = _messages("assistant", answer, finish_reason="stop")
    return attrs


def send_scenario(collector, base_ns: int | None = None) -> Scenario:
    """Send the scenario over OTLP/gRPC; returns what the tests expect back."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    tag = uuid.uuid4().hex[:10]
    if base_ns is None:
        # Whole seconds, an hour ago: inside any "--since 2h" window.
        base_ns = (int(time.time()) - 3600) * 1_000_000_000
    sc = Scenario(
        service=f"traces-{tag}",
        paging_service=f"paging-{tag}",
        session_id=f"sess-{tag}",
        user_id=f"user-{tag}",
        pager_user=f"pager-{tag}",
        base_ns=base_ns,
    )
    providers = []

    def tracer_for(service: str):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        exporter = OTLPSpanExporter(endpoint=collector.grpc_endpoint, insecure=True, timeout=30)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
        providers.append(provider)
        return provider.get_tracer("tests.traces")

    tracer = tracer_for(sc.service)

    def span(name, start_ms, end_ms, t0, parent=None, kind=SpanKind.INTERNAL, attrs=None):
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        s = tracer.start_span(
            name, context=ctx, kind=kind, attributes=attrs or {}, start_time=t0 + start_ms * MS
        )
        return s, t0 + end_ms * MS

    for turn in range(3):
        t0 = base_ns + turn * 10_000 * MS
        question = f"What is the weather in Oslo, turn {turn} {tag}?"
        answer = f"It is sunny in Oslo ({turn} {tag})."
        sc.questions.append(question)
        sc.answers.append(answer)
        end = {0: 2000, 1: 3000, 2: 1500}[turn]
        root_attrs = {"session.id": sc.session_id, "user.id": sc.user_id}
        root, root_end = span("agent.turn", 0, end, t0, kind=SpanKind.SERVER, attrs=root_attrs)
        sc.turn_ids.append(format(root.get_span_context().trace_id, "032x"))
        if turn == 0:
            llm, llm_end = span(
                "chat gpt-4o-mini", 100, 900, t0, root, SpanKind.CLIENT, _llm_attrs(0, question, answer)
            )
            llm.add_event(
                "gen_ai.evaluation.result",
                {"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.8},
                timestamp=t0 + 950 * MS,
            )
            llm.end(end_time=llm_end)
            # A child of a span that never arrives: same trace, unknown parent id.
            missing = NonRecordingSpan(
                SpanContext(
                    trace_id=root.get_span_context().trace_id,
                    span_id=0x0BADC0DE0BADC0DE,
                    is_remote=True,
                    trace_flags=TraceFlags(TraceFlags.SAMPLED),
                )
            )
            orphan, orphan_end = span("cache.lookup", 1200, 1250, t0, missing)
            sc.orphan_span_id = format(orphan.get_span_context().span_id, "016x")
            orphan.end(end_time=orphan_end)
        elif turn == 1:
            first, first_end = span(
                "chat gpt-4o-mini", 100, 700, t0, root, SpanKind.CLIENT, _llm_attrs(0, question, None, True)
            )
            first.end(end_time=first_end)
            tool, tool_end = span(
                "execute_tool get_weather",
                800,
                1000,
                t0,
                root,
                attrs={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "get_weather",
                    "gen_ai.tool.call.id": "call_1",
                    "gen_ai.tool.call.arguments": json.dumps({"city": "Oslo"}),
                    "gen_ai.tool.call.result": json.dumps({"sky": "sunny"}),
                },
            )
            tool.end(end_time=tool_end)
            second, second_end = span(
                "chat gpt-4o-mini", 1100, 2900, t0, root, SpanKind.CLIENT, _llm_attrs(1, question, answer)
            )
            second.end(end_time=second_end)
        else:
            llm, llm_end = span(
                "chat gpt-4o-mini", 100, 600, t0, root, SpanKind.CLIENT, _llm_attrs(0, question, answer)
            )
            llm.end(end_time=llm_end)
            db, db_end = span("db.query", 700, 1400, t0, root, SpanKind.CLIENT)
            try:
                raise ConnectionError("database went away")
            except ConnectionError as exc:
                db.record_exception(exc, timestamp=t0 + 1390 * MS)
            db.set_status(Status(StatusCode.ERROR, "database went away"))
            db.end(end_time=db_end)
            root.set_status(Status(StatusCode.ERROR, "turn failed"))
        root.end(end_time=root_end)

    # A trace three days older: another day partition, for the lookup-pruning check.
    old, _ = span("agent.turn", 0, 10, base_ns - 3 * 86400 * 1000 * MS, kind=SpanKind.SERVER)
    sc.old_trace_id = format(old.get_span_context().trace_id, "032x")
    old.end(end_time=base_ns - 3 * 86400 * 1000 * MS + 10 * MS)

    paging = tracer_for(sc.paging_service)
    for i in range(PAGING_TRACES):
        # Pairs share a start time, so paging must break ties by trace id.
        start = base_ns + 60_000 * MS + (i // 2) * 1000 * MS
        # ... and pairs share a session: PAGING_TRACES // 2 + 1 sessions of one user, for paging sessions.
        attrs = {"session.id": f"pager-sess-{tag}-{i // 2}", "user.id": sc.pager_user}
        s = paging.start_span(f"job {i}", start_time=start, attributes=attrs)
        sc.paging_ids.append(format(s.get_span_context().trace_id, "032x"))
        s.end(end_time=start + (i + 1) * MS)

    for p in providers:
        assert p.force_flush(30_000), "spans not exported"  # the collector acks once stored
        p.shutdown()
    return sc
