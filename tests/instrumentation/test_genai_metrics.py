"""GenAI client metrics of the OpenAI instrumentor (the Anthropic ones are tested beside its
spans): `gen_ai.client.token.usage` and `gen_ai.client.operation.duration`, recorded once per
operation at span end, read back through an InMemoryMetricReader."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from test_instrument_openai import MESSAGES, api  # noqa: F401  (the fake OpenAI API fixture)
from tracehouse.instrumentors._common import DURATION_BUCKETS, TOKEN_BUCKETS
from tracehouse.instrumentors.openai import OpenAIInstrumentor


@pytest.fixture
def reader(api) -> Iterator[InMemoryMetricReader]:  # noqa: F811
    reader = InMemoryMetricReader()
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=TracerProvider(), meter_provider=MeterProvider(metric_readers=[reader]))
    yield reader
    inst.uninstrument()


def _points(reader: InMemoryMetricReader) -> dict[str, dict[tuple, Any]]:
    out: dict[str, dict[tuple, Any]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            assert sm.scope.name == "tracehouse.instrumentors.openai"
            for m in sm.metrics:
                out[m.name] = {tuple(sorted(p.attributes.items())): p for p in m.data.data_points}
                assert m.unit == {"gen_ai.client.token.usage": "{token}"}.get(m.name, "s")
    return out


def _key(**attrs: Any) -> tuple:
    return tuple(sorted(attrs.items()))


def test_openai_token_usage_and_duration(reader, api):  # noqa: F811
    client = openai.OpenAI(base_url=api.base_url, api_key="t", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    for _ in stream:
        pass
    client.embeddings.create(model="text-embedding-3-small", input="hi")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-400", messages=MESSAGES)
    client.close()
    points = _points(reader)
    server = {"server.address": "127.0.0.1", "server.port": api.server_port}
    chat = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024",
        "openai.response.system_fingerprint": "fp_test",
        **server,
    }
    emb = {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "text-embedding-3-small",
        "gen_ai.response.model": "text-embedding-3-small-v1",
        **server,
    }
    tokens = points["gen_ai.client.token.usage"]
    assert set(tokens) == {
        _key(**chat, **{"gen_ai.token.type": "input"}),
        _key(**chat, **{"gen_ai.token.type": "output"}),
        _key(**emb, **{"gen_ai.token.type": "input"}),
    }
    chat_in = tokens[_key(**chat, **{"gen_ai.token.type": "input"})]
    chat_out = tokens[_key(**chat, **{"gen_ai.token.type": "output"})]
    assert (chat_in.count, chat_in.sum, chat_out.count, chat_out.sum) == (2, 24, 2, 6)
    assert tokens[_key(**emb, **{"gen_ai.token.type": "input"})].sum == 5
    assert tuple(chat_in.explicit_bounds) == TOKEN_BUCKETS
    durations = points["gen_ai.client.operation.duration"]
    failed = {**chat, "gen_ai.request.model": "gpt-400", "error.type": "BadRequestError"}
    del failed["gen_ai.response.model"], failed["openai.response.system_fingerprint"]
    assert set(durations) == {_key(**chat), _key(**emb), _key(**failed)}
    assert [durations[_key(**a)].count for a in (chat, emb, failed)] == [2, 1, 1]
    assert tuple(durations[_key(**chat)].explicit_bounds) == DURATION_BUCKETS
    assert durations[_key(**chat)].sum > 0
    # The streaming histograms: only the streamed call, its first chunk once, then one point per
    # later chunk (the fake stream sends five, the usage chunk included).
    [first] = points["gen_ai.client.operation.time_to_first_chunk"].values()
    [gaps] = points["gen_ai.client.operation.time_per_output_chunk"].values()
    assert dict(first.attributes) == chat == dict(gaps.attributes)
    assert (first.count, gaps.count) == (1, 4)
    assert first.sum > 0 and 0 <= gaps.sum < durations[_key(**chat)].sum


def test_metrics_off_with_no_meter_provider_do_not_break_calls(api):  # noqa: F811
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=TracerProvider())  # global (no-op) meter provider
    try:
        client = openai.OpenAI(base_url=api.base_url, api_key="t", max_retries=0)
        assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices
        client.close()
    finally:
        inst.uninstrument()
