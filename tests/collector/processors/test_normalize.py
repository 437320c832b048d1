"""The normaliser on attribute sets real producers emit.

Attribute names come from each producer's own source (OTel semantic-conventions(-genai)
registry, Arize-ai/openinference semantic_conventions.py and instrumentors,
traceloop/openllmetry semconv_ai and its Anthropic/LangChain instrumentations, vercel/ai
telemetry, langfuse OTel ingestion, mlflow tracing constants, strands-agents tracer); the values
are made up. Attribute values are strings, as `rows.attributes` renders them (arrays and maps
as JSON text). Expected facts are whole `GenAIFacts` values, so every field is asserted.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from tracehouse_collector.processors.genai_facts import GenAIFacts
from tracehouse_collector.processors.normalize import (
    NON_MODEL_OPERATIONS,
    context_ids,
    extract,
    normalize_evaluation_event,
    normalize_provider,
    parse_decimal,
    parse_int,
)

RESOURCE = {"service.name": "support-bot", "telemetry.sdk.language": "python"}


def j(value: object) -> str:
    return json.dumps(value)


# -- OpenTelemetry GenAI, current ------------------------------------------------------------


def test_otel_current_openai_chat_cached_tokens_are_inside_input():
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.response.id": "chatcmpl-123",
        "gen_ai.usage.input_tokens": "1200",
        "gen_ai.usage.output_tokens": "300",
        "gen_ai.usage.cache_read.input_tokens": "1000",
        "gen_ai.usage.reasoning.output_tokens": "100",
        "gen_ai.conversation.id": "conv_5j66",
        "server.address": "api.openai.com",
        "gen_ai.input.messages": j([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]),
    }
    assert extract(attrs, RESOURCE, "chat gpt-4o") == GenAIFacts(
        operation="chat",
        provider="openai",
        request_model="gpt-4o",
        response_model="gpt-4o-2024-08-06",
        input_tokens=1200,
        output_tokens=300,
        cache_read_tokens=1000,
        reasoning_tokens=100,
        total_tokens=1500,
    )
    assert context_ids(attrs, RESOURCE) == ("conv_5j66", "", "", "")


def test_otel_current_anthropic_cache_read_and_creation_already_in_input():
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.usage.input_tokens": "1250",
        "gen_ai.usage.output_tokens": "80",
        "gen_ai.usage.cache_read.input_tokens": "1000",
        "gen_ai.usage.cache_creation.input_tokens": "200",
    }
    assert extract(attrs, RESOURCE) == GenAIFacts(
        operation="chat",
        provider="anthropic",
        request_model="claude-sonnet-4-5",
        input_tokens=1250,
        output_tokens=80,
        cache_read_tokens=1000,
        cache_write_tokens=200,
        total_tokens=1330,
    )


def test_otel_current_names_with_anthropic_style_input_are_folded_once():
    # An input smaller than its own cache reads cannot include them.
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.usage.input_tokens": "50",
        "gen_ai.usage.output_tokens": "80",
        "gen_ai.usage.cache_read.input_tokens": "1000",
        "gen_ai.usage.cache_creation.input_tokens": "200",
    }
    f = extract(attrs, RESOURCE)
    assert (f.input_tokens, f.cache_read_tokens, f.cache_write_tokens, f.total_tokens) == (
        1250,
        1000,
        200,
        1330,
    )


def test_otel_without_usage_collects_message_text_not_json_structure():
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.request.model": "gemini-2.5-flash",
        "gen_ai.system_instructions": j([{"type": "text", "content": "You are terse."}]),
        "gen_ai.input.messages": j(
            [
                {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
                {
                    "role": "user",
                    "parts": [
                        {
                            "type": "blob",
                            "modality": "image",
                            "mime_type": "image/png",
                            "content": "iVBORw0KGgo",
                        }
                    ],
                },
                {
                    "role": "assistant",
                    "parts": [
                        {
                            "type": "tool_call",
                            "id": "call_1",
                            "name": "get_weather",
                            "arguments": {"city": "Paris"},
                        }
                    ],
                },
            ]
        ),
        "gen_ai.output.messages": j(
            [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": "Rainy, 57F."}],
                    "finish_reason": "stop",
                }
            ]
        ),
    }
    assert extract(attrs, RESOURCE) == GenAIFacts(
        operation="chat",
        provider="gcp.gemini",
        request_model="gemini-2.5-flash",
        input_text="You are terse.\nWeather in Paris?\nParis",
        output_text="Rainy, 57F.",
    )


def test_otel_reasoning_outside_output_is_folded_when_total_says_so():
    # Gemini counts thoughts apart from candidates; its total includes both.
    attrs = {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "gcp.vertex_ai",
        "gen_ai.request.model": "gemini-2.5-pro",
        "gen_ai.usage.input_tokens": "100",
        "gen_ai.usage.output_tokens": "50",
        "gen_ai.usage.reasoning.output_tokens": "30",
        "gen_ai.usage.total_tokens": "180",
    }
    f = extract(attrs, RESOURCE)
    assert (f.operation, f.input_tokens, f.output_tokens, f.reasoning_tokens, f.total_tokens) == (
        "generate_content",
        100,
        80,
        30,
        180,
    )


def test_otel_reasoning_already_in_output_is_not_added_again():
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "o3-mini",
        "gen_ai.usage.input_tokens": "100",
        "gen_ai.usage.output_tokens": "500",
        "gen_ai.usage.reasoning.output_tokens": "400",
        "gen_ai.usage.total_tokens": "600",
    }
    f = extract(attrs, RESOURCE)
    assert (f.output_tokens, f.reasoning_tokens, f.total_tokens) == (500, 400, 600)


def test_otel_agent_span_keeps_identity_but_not_its_aggregate_usage():
    # invoke_agent spans (Vercel's @ai-sdk/otel, Strands, pydantic-ai) repeat the usage of the
    # chat spans beneath them; counting both would double the trace's tokens and cost.
    attrs = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.agent.name": "support",
        "gen_ai.usage.input_tokens": "5000",
        "gen_ai.usage.output_tokens": "700",
        "gen_ai.usage.cost": "0.02",
        "gen_ai.input.messages": j([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]),
    }
    assert extract(attrs, RESOURCE, "invoke_agent support") == GenAIFacts(
        operation="invoke_agent", provider="openai", request_model="gpt-4o"
    )
    assert "invoke_agent" in NON_MODEL_OPERATIONS and "chat" not in NON_MODEL_OPERATIONS


def test_otel_tool_span():
    attrs = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.call.id": "c1",
    }
    assert extract(attrs, RESOURCE, "execute_tool get_weather") == GenAIFacts(operation="execute_tool")


# -- OpenTelemetry GenAI, deprecated ---------------------------------------------------------


def test_otel_deprecated_names_operation_from_span_name():
    attrs = {
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4",
        "gen_ai.response.model": "gpt-4-0613",
        "gen_ai.usage.prompt_tokens": "42",
        "gen_ai.usage.completion_tokens": "7",
        "gen_ai.openai.request.seed": "100",
    }
    assert extract(attrs, RESOURCE, "chat gpt-4") == GenAIFacts(
        operation="chat",
        provider="openai",
        request_model="gpt-4",
        response_model="gpt-4-0613",
        input_tokens=42,
        output_tokens=7,
        total_tokens=49,
    )


@pytest.mark.parametrize(
    ("span_name", "operation"),
    [
        ("text_completion davinci-002", "text_completion"),
        ("embeddings text-embedding-3-small", "embeddings"),
        ("chat", "chat"),
        ("POST /v1/chat/completions", ""),
    ],
)
def test_otel_deprecated_operation_from_span_name(span_name, operation):
    f = extract({"gen_ai.system": "openai", "gen_ai.request.model": "m"}, RESOURCE, span_name)
    assert f.operation == operation


def test_otel_deprecated_prompt_and_completion_text():
    attrs = {
        "gen_ai.system": "az.ai.openai",
        "gen_ai.request.model": "gpt-4",
        "gen_ai.prompt": j([{"role": "user", "content": "What is the capital of France?"}]),
        "gen_ai.completion": j([{"role": "assistant", "content": "Paris."}]),
    }
    assert extract(attrs, RESOURCE, "chat gpt-4") == GenAIFacts(
        operation="chat",
        provider="azure.ai.openai",
        request_model="gpt-4",
        input_text="What is the capital of France?",
        output_text="Paris.",
    )


def test_otel_deprecated_prompt_as_plain_text_is_taken_as_is():
    attrs = {"gen_ai.system": "openai", "gen_ai.request.model": "m", "gen_ai.prompt": "[{'role': 'user'"}
    assert extract(attrs, RESOURCE, "chat m").input_text == "[{'role': 'user'"


# -- OpenInference ---------------------------------------------------------------------------


def test_openinference_anthropic_prompt_already_includes_cache():
    attrs = {
        "openinference.span.kind": "LLM",
        "llm.provider": "anthropic",
        "llm.system": "anthropic",
        "llm.model_name": "claude-3-5-sonnet-20241022",
        "llm.token_count.prompt": "1250",
        "llm.token_count.completion": "80",
        "llm.token_count.total": "1330",
        "llm.token_count.prompt_details.cache_read": "1000",
        "llm.token_count.prompt_details.cache_write": "200",
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "Summarise the document.",
        "input.value": j({"messages": [{"role": "user", "content": "Summarise the document."}]}),
        "input.mime_type": "application/json",
        "session.id": "sess-1",
        "user.id": "user-9",
    }
    assert extract(attrs, RESOURCE, "Messages") == GenAIFacts(
        operation="chat",
        provider="anthropic",
        request_model="claude-3-5-sonnet-20241022",
        response_model="claude-3-5-sonnet-20241022",
        input_tokens=1250,
        output_tokens=80,
        cache_read_tokens=1000,
        cache_write_tokens=200,
        total_tokens=1330,
    )
    assert context_ids(attrs, RESOURCE) == ("sess-1", "user-9", "", "")


def test_openinference_bedrock_converse_prompt_excludes_cache_but_total_includes_it():
    # The Bedrock Converse path passes usage.inputTokens (cache excluded) and totalTokens.
    attrs = {
        "openinference.span.kind": "LLM",
        "llm.provider": "aws",
        "llm.system": "anthropic",
        "llm.model_name": "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "llm.token_count.prompt": "3000",
        "llm.token_count.completion": "80",
        "llm.token_count.total": "4280",
        "llm.token_count.prompt_details.cache_read": "1000",
        "llm.token_count.prompt_details.cache_write": "200",
    }
    # input >= cache, so only the total can tell that the prompt count left the cache out
    f = extract(attrs, RESOURCE, "bedrock.converse")
    assert (f.provider, f.input_tokens, f.output_tokens, f.total_tokens) == ("aws.bedrock", 4200, 80, 4280)
    assert (f.cache_read_tokens, f.cache_write_tokens) == (1000, 200)


def test_openinference_request_and_response_model_and_reported_cost():
    attrs = {
        "openinference.span.kind": "LLM",
        "llm.provider": "azure",
        "llm.system": "openai",
        "llm.model_name": "gpt-4o-2024-08-06",
        "llm.request.model_name": "gpt-4o",
        "llm.response.model_name": "gpt-4o-2024-08-06",
        "llm.token_count.prompt": "100",
        "llm.token_count.completion": "20",
        "llm.token_count.completion_details.reasoning": "5",
        "llm.cost.prompt": "0.00025",
        "llm.cost.completion": "0.0002",
        "llm.cost.total": "0.00045",
    }
    assert extract(attrs, RESOURCE) == GenAIFacts(
        operation="chat",
        provider="azure.ai.openai",
        request_model="gpt-4o",
        response_model="gpt-4o-2024-08-06",
        input_tokens=100,
        output_tokens=20,
        reasoning_tokens=5,
        total_tokens=120,
        reported_cost_usd=Decimal("0.00045"),
        reported_input_cost_usd=Decimal("0.00025"),
        reported_output_cost_usd=Decimal("0.0002"),
    )


def test_openinference_cost_total_derived_from_parts():
    attrs = {"openinference.span.kind": "LLM", "llm.cost.prompt": "0.001", "llm.cost.completion": "0.002"}
    f = extract(attrs, RESOURCE)
    assert (f.reported_cost_usd, f.reported_input_cost_usd, f.reported_output_cost_usd) == (
        Decimal("0.003"),
        Decimal("0.001"),
        Decimal("0.002"),
    )


def test_openinference_embedding():
    attrs = {
        "openinference.span.kind": "EMBEDDING",
        "embedding.model_name": "text-embedding-3-small",
        "llm.token_count.prompt": "12",
        "llm.token_count.total": "12",
        "embedding.embeddings.0.embedding.text": "hello world",
    }
    assert extract(attrs, RESOURCE) == GenAIFacts(
        operation="embeddings", request_model="text-embedding-3-small", input_tokens=12, total_tokens=12
    )


def test_openinference_without_usage_reads_message_content():
    attrs = {
        "openinference.span.kind": "LLM",
        "llm.provider": "google",
        "llm.system": "vertexai",
        "llm.model_name": "gemini-1.5-pro",
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "Be brief.",
        "llm.input_messages.1.message.role": "assistant",
        "llm.input_messages.1.message.tool_calls.0.tool_call.function.name": "lookup",
        "llm.input_messages.2.message.role": "user",
        "llm.input_messages.2.message.content": "Why is the sky blue?",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "Rayleigh scattering.",
        "input.value": "ignored when messages are present",
    }
    assert extract(attrs, RESOURCE) == GenAIFacts(
        operation="chat",
        provider="gcp.vertex_ai",
        request_model="gemini-1.5-pro",
        response_model="gemini-1.5-pro",
        input_text="Be brief.\nWhy is the sky blue?",
        output_text="Rayleigh scattering.",
    )


def test_openinference_multimodal_contents_and_input_value_fallback():
    attrs = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o",
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.contents.0.message_content.type": "text",
        "llm.input_messages.0.message.contents.0.message_content.text": "What is in this image?",
        "llm.input_messages.0.message.contents.1.message_content.type": "image",
        "llm.input_messages.0.message.contents.1.message_content.image.image.url": "https://x/y.png",
        "output.value": "A cat.",
        "output.mime_type": "text/plain",
    }
    f = extract(attrs, RESOURCE)
    assert (f.input_text, f.output_text) == ("What is in this image?", "A cat.")


@pytest.mark.parametrize(
    ("kind", "operation"),
    [
        ("CHAIN", "chain"),
        ("TOOL", "execute_tool"),
        ("AGENT", "invoke_agent"),
        ("RETRIEVER", "retrieval"),
        ("GUARDRAIL", "guardrail"),
        ("EVALUATOR", "evaluation"),
    ],
)
def test_openinference_non_llm_kinds_yield_facts_without_usage_or_cost(kind, operation):
    attrs = {
        "openinference.span.kind": kind,
        "input.value": "question",
        "output.value": "answer",
        # smolagents / openai-agents put the run's aggregate counts on AGENT and CHAIN spans
        "llm.token_count.prompt": "900",
        "llm.token_count.completion": "100",
        "llm.cost.total": "0.01",
    }
    assert extract(attrs, RESOURCE) == GenAIFacts(operation=operation)


def test_openinference_reranker_is_a_model_call():
    attrs = {
        "openinference.span.kind": "RERANKER",
        "reranker.model_name": "rerank-english-v3.0",
        "llm.token_count.prompt": "300",
    }
    assert extract(attrs, RESOURCE) == GenAIFacts(
        operation="rerank", request_model="rerank-english-v3.0", input_tokens=300, total_tokens=300
    )


# -- OpenLLMetry / Traceloop -----------------------------------------------------------------


def test_openllmetry_anthropic_prompt_tokens_include_cache_and_total_proves_it():
    # opentelemetry-instrumentation-anthropic: input = input_tokens + cache_read + cache_creation,
    # total = input + output, cache counts under Anthropic's own names.
    attrs = {
        "gen_ai.system": "Anthropic",
        "llm.request.type": "chat",
        "gen_ai.request.model": "claude-3-5-sonnet-latest",
        "gen_ai.response.model": "claude-3-5-sonnet-20241022",
        "gen_ai.usage.prompt_tokens": "1250",
        "gen_ai.usage.completion_tokens": "80",
        "llm.usage.total_tokens": "1330",
        "gen_ai.usage.cache_read_input_tokens": "1000",
        "gen_ai.usage.cache_creation_input_tokens": "200",
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "Summarise.",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "Done.",
        "traceloop.association.properties.session_id": "s-77",
        "traceloop.association.properties.user_id": "u-3",
    }
    assert extract(attrs, RESOURCE, "anthropic.chat") == GenAIFacts(
        operation="chat",
        provider="anthropic",
        request_model="claude-3-5-sonnet-latest",
        response_model="claude-3-5-sonnet-20241022",
        input_tokens=1250,
        output_tokens=80,
        cache_read_tokens=1000,
        cache_write_tokens=200,
        total_tokens=1330,
    )
    assert context_ids(attrs, RESOURCE) == ("s-77", "u-3", "", "")


def test_anthropic_style_names_without_total_are_outside_input():
    # Hand-rolled spans copying Anthropic's usage object verbatim.
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "anthropic",
        "gen_ai.request.model": "claude-haiku-4-5",
        "gen_ai.usage.input_tokens": "1500",
        "gen_ai.usage.output_tokens": "80",
        "gen_ai.usage.cache_read_input_tokens": "1000",
        "gen_ai.usage.cache_creation_input_tokens": "200",
    }
    f = extract(attrs, RESOURCE)
    assert (f.input_tokens, f.cache_read_tokens, f.cache_write_tokens, f.total_tokens) == (
        2700,
        1000,
        200,
        2780,
    )


def test_strands_bedrock_usage_total_includes_cache_input_does_not():
    # strands-agents tracer: Bedrock Converse usage (inputTokens excludes cache, totalTokens not).
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "strands-agents",
        "gen_ai.request.model": "us.anthropic.claude-sonnet-4-20250514-v1:0",
        "gen_ai.usage.prompt_tokens": "60",
        "gen_ai.usage.input_tokens": "60",
        "gen_ai.usage.completion_tokens": "40",
        "gen_ai.usage.output_tokens": "40",
        "gen_ai.usage.total_tokens": "4100",
        "gen_ai.usage.cache_read_input_tokens": "4000",
        "gen_ai.usage.cache_write_input_tokens": "0",
    }
    f = extract(attrs, RESOURCE, "chat")
    assert (f.input_tokens, f.output_tokens, f.cache_read_tokens, f.cache_write_tokens, f.total_tokens) == (
        4060,
        40,
        4000,
        0,
        4100,
    )


def test_openllmetry_embeddings_and_old_system_spellings():
    attrs = {
        "gen_ai.system": "Azure",
        "llm.request.type": "embedding",
        "gen_ai.request.model": "text-embedding-ada-002",
        "gen_ai.usage.prompt_tokens": "8",
        "llm.usage.total_tokens": "8",
        "gen_ai.openai.api_base": "https://acme.openai.azure.com/",
    }
    assert extract(attrs, RESOURCE, "openai.embeddings") == GenAIFacts(
        operation="embeddings",
        provider="azure.ai.openai",
        request_model="text-embedding-ada-002",
        input_tokens=8,
        total_tokens=8,
    )


@pytest.mark.parametrize(
    ("span_name", "operation"), [("cohere.rerank", "rerank"), ("bedrock.completion", "text_completion")]
)
def test_openllmetry_operation_from_dotted_span_name(span_name, operation):
    assert (
        extract({"gen_ai.system": "cohere", "gen_ai.request.model": "m"}, RESOURCE, span_name).operation
        == operation
    )


def test_openllmetry_indexed_prompts_without_usage():
    attrs = {
        "gen_ai.system": "openai",
        "llm.request.type": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.prompt.0.role": "system",
        "gen_ai.prompt.0.content": "You are helpful.",
        "gen_ai.prompt.1.role": "assistant",
        "gen_ai.prompt.1.tool_calls.0.name": "search",
        "gen_ai.prompt.2.role": "user",
        "gen_ai.prompt.2.content": "Find flights.",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "Searching.",
    }
    f = extract(attrs, RESOURCE, "openai.chat")
    assert (f.input_text, f.output_text, f.has_usage) == (
        "You are helpful.\nFind flights.",
        "Searching.",
        False,
    )


def test_text_from_content_blocks_old_openllmetry_names_and_vercel_prompt():
    blocks = {
        "gen_ai.system": "anthropic",
        "llm.request.type": "chat",
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": j(
            [{"type": "text", "text": "Read this."}, {"type": "image", "source": {"data": "AAAA"}}]
        ),
    }
    assert extract(blocks, RESOURCE, "anthropic.chat").input_text == "Read this."
    old = {
        "llm.request.type": "completion",
        "gen_ai.system": "openai",
        "llm.prompts.0.content": "Once upon a time",
        "llm.completions.0.content": " there was a span.",
    }
    f = extract(old, RESOURCE, "openai.completion")
    assert (f.operation, f.input_text, f.output_text) == (
        "text_completion",
        "Once upon a time",
        " there was a span.",
    )
    vercel = {
        "ai.operationId": "ai.generateObject.doGenerate",
        "ai.model.id": "gpt-4o",
        "ai.prompt": j({"system": "Extract fields.", "prompt": "Invoice #7, total 12 EUR"}),
        "ai.response.object": j({"invoice": 7, "total": "12 EUR"}),
    }
    f = extract(vercel, RESOURCE)
    assert (f.operation, f.input_text, f.output_text) == (
        "chat",
        "Extract fields.\nInvoice #7, total 12 EUR",
        "12 EUR",
    )


def test_traceloop_workflow_span():
    attrs = {
        "traceloop.span.kind": "workflow",
        "traceloop.workflow.name": "joke_generator",
        "traceloop.entity.name": "joke_generator",
        "traceloop.entity.input": j({"args": [], "kwargs": {}}),
        "gen_ai.provider.name": "langchain",
        "traceloop.association.properties.session_id": "s1",
    }
    assert extract(attrs, RESOURCE, "joke_generator.workflow") == GenAIFacts(operation="invoke_workflow")
    assert context_ids(attrs, RESOURCE) == ("s1", "", "", "")


def test_framework_as_provider_is_not_a_provider_server_address_is():
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "langchain",
        "gen_ai.request.model": "gpt-4o",
        "server.address": "my-resource.openai.azure.com",
    }
    assert extract(attrs, RESOURCE).provider == "azure.ai.openai"


# -- Vercel AI SDK ---------------------------------------------------------------------------


def test_vercel_v4_do_generate():
    attrs = {
        "operation.name": "ai.generateText.doGenerate chat-route",
        "ai.operationId": "ai.generateText.doGenerate",
        "ai.telemetry.functionId": "chat-route",
        "ai.model.provider": "openai.chat",
        "ai.model.id": "gpt-4o-mini",
        "ai.prompt.format": "messages",
        "ai.prompt.messages": j([{"role": "user", "content": [{"type": "text", "text": "hi"}]}]),
        "ai.response.text": "Hello!",
        "ai.response.model": "gpt-4o-mini-2024-07-18",
        "ai.usage.promptTokens": "9",
        "ai.usage.completionTokens": "3",
        "gen_ai.system": "openai.chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": "9",
        "gen_ai.usage.output_tokens": "3",
        "ai.telemetry.metadata.sessionId": "chat-42",
        "ai.telemetry.metadata.userId": "alice",
    }
    assert extract(attrs, RESOURCE, "ai.generateText.doGenerate") == GenAIFacts(
        operation="chat",
        provider="openai",
        request_model="gpt-4o-mini",
        response_model="gpt-4o-mini-2024-07-18",
        input_tokens=9,
        output_tokens=3,
        total_tokens=12,
    )
    assert context_ids(attrs, RESOURCE) == ("chat-42", "alice", "", "")


def test_vercel_v5_anthropic_input_excludes_cache_reads_and_writes():
    # @ai-sdk/anthropic 2.x: inputTokens = usage.input_tokens, cachedInputTokens = cache reads,
    # cache writes only in providerMetadata, totalTokens = input + output.
    attrs = {
        "ai.operationId": "ai.streamText.doStream",
        "ai.model.provider": "anthropic.messages",
        "ai.model.id": "claude-sonnet-4-20250514",
        "ai.usage.inputTokens": "1500",
        "ai.usage.outputTokens": "80",
        "ai.usage.totalTokens": "1580",
        "ai.usage.cachedInputTokens": "1000",
        "ai.response.providerMetadata": j(
            {"anthropic": {"cacheCreationInputTokens": 200, "usage": {"input_tokens": 1500}}}
        ),
        "gen_ai.system": "anthropic.messages",
        "gen_ai.request.model": "claude-sonnet-4-20250514",
        "gen_ai.usage.input_tokens": "1500",
        "gen_ai.usage.output_tokens": "80",
    }
    # Its total (input + output) looks inclusive; the provider says it is not.
    assert extract(attrs, RESOURCE, "ai.streamText.doStream") == GenAIFacts(
        operation="chat",
        provider="anthropic",
        request_model="claude-sonnet-4-20250514",
        input_tokens=2700,
        output_tokens=80,
        cache_read_tokens=1000,
        cache_write_tokens=200,
        total_tokens=2780,
    )


def test_vercel_v5_bedrock_cache_write_from_provider_metadata():
    attrs = {
        "ai.operationId": "ai.generateText.doGenerate",
        "ai.model.provider": "amazon-bedrock",
        "ai.model.id": "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "ai.usage.promptTokens": "400",
        "ai.usage.completionTokens": "20",
        "ai.usage.cachedInputTokens": "300",
        "ai.response.providerMetadata": j(
            {"bedrock": {"usage": {"cacheReadInputTokens": 300, "cacheWriteInputTokens": 100}}}
        ),
    }
    f = extract(attrs, RESOURCE)
    assert (f.provider, f.input_tokens, f.cache_read_tokens, f.cache_write_tokens, f.total_tokens) == (
        "aws.bedrock",
        800,
        300,
        100,
        820,
    )


def test_vercel_v5_openai_cached_tokens_are_inside_input():
    attrs = {
        "ai.operationId": "ai.generateText.doGenerate",
        "ai.model.provider": "openai.responses",
        "ai.model.id": "gpt-5",
        "ai.usage.inputTokens": "1200",
        "ai.usage.outputTokens": "300",
        "ai.usage.totalTokens": "1500",
        "ai.usage.cachedInputTokens": "1000",
        "ai.usage.reasoningTokens": "200",
    }
    f = extract(attrs, RESOURCE)
    assert (f.provider, f.input_tokens, f.output_tokens, f.reasoning_tokens, f.total_tokens) == (
        "openai",
        1200,
        300,
        200,
        1500,
    )


def test_vercel_v5_google_reasoning_outside_output():
    attrs = {
        "ai.operationId": "ai.generateText.doGenerate",
        "ai.model.provider": "google.generative-ai",
        "ai.model.id": "gemini-2.5-flash",
        "ai.usage.inputTokens": "100",
        "ai.usage.outputTokens": "50",
        "ai.usage.reasoningTokens": "30",
        "ai.usage.totalTokens": "180",
    }
    f = extract(attrs, RESOURCE)
    assert (f.provider, f.output_tokens, f.reasoning_tokens, f.total_tokens) == ("gcp.gemini", 80, 30, 180)


def test_vercel_v6_input_token_details():
    attrs = {
        "ai.operationId": "ai.streamText.doStream",
        "ai.model.provider": "anthropic.messages",
        "ai.model.id": "claude-opus-4-1",
        "ai.usage.inputTokens": "1250",
        "ai.usage.inputTokenDetails.noCacheTokens": "50",
        "ai.usage.inputTokenDetails.cacheReadTokens": "1000",
        "ai.usage.inputTokenDetails.cacheWriteTokens": "200",
        "ai.usage.outputTokens": "80",
        "ai.usage.outputTokenDetails.textTokens": "70",
        "ai.usage.outputTokenDetails.reasoningTokens": "10",
        "ai.usage.totalTokens": "1330",
        "ai.usage.cachedInputTokens": "1000",
        "ai.usage.reasoningTokens": "10",
    }
    assert extract(attrs, RESOURCE) == GenAIFacts(
        operation="chat",
        provider="anthropic",
        request_model="claude-opus-4-1",
        input_tokens=1250,
        output_tokens=80,
        cache_read_tokens=1000,
        cache_write_tokens=200,
        reasoning_tokens=10,
        total_tokens=1330,
    )


@pytest.mark.parametrize(
    ("operation_id", "operation"),
    [
        ("ai.generateText", "invoke_agent"),
        ("ai.streamText", "invoke_agent"),
        ("ai.generateObject", "invoke_agent"),
        ("ai.embedMany", "invoke_workflow"),
    ],
)
def test_vercel_outer_spans_do_not_repeat_their_steps_usage(operation_id, operation):
    attrs = {
        "ai.operationId": operation_id,
        "ai.model.provider": "openai.chat",
        "ai.model.id": "gpt-4o",
        "ai.usage.promptTokens": "900",
        "ai.usage.completionTokens": "100",
        "ai.usage.tokens": "900",
        "ai.prompt": j({"prompt": "hello"}),
    }
    assert extract(attrs, RESOURCE, operation_id) == GenAIFacts(
        operation=operation, provider="openai", request_model="gpt-4o"
    )


def test_vercel_embedding_step_and_tool_call():
    embed = {
        "ai.operationId": "ai.embedMany.doEmbed",
        "ai.model.provider": "openai.embedding",
        "ai.model.id": "text-embedding-3-small",
        "ai.values": j([j("sunny day"), j("rainy day")]),
        "ai.usage.tokens": "6",
    }
    assert extract(embed, RESOURCE) == GenAIFacts(
        operation="embeddings",
        provider="openai",
        request_model="text-embedding-3-small",
        input_tokens=6,
        total_tokens=6,
    )
    tool = {"ai.operationId": "ai.toolCall", "ai.toolCall.name": "weather", "ai.toolCall.id": "t1"}
    assert extract(tool, RESOURCE, "ai.toolCall") == GenAIFacts(operation="execute_tool")


def test_vercel_without_usage_reads_prompt_messages_and_response_text():
    attrs = {
        "ai.operationId": "ai.streamText.doStream",
        "ai.model.provider": "mistral.chat",
        "ai.model.id": "mistral-large-latest",
        "ai.prompt.messages": j(
            [
                {"role": "system", "content": "Be kind."},
                {"role": "user", "content": [{"type": "text", "text": "Tell me a joke."}]},
            ]
        ),
        "ai.response.text": "Why did the chicken cross the road?",
    }
    assert extract(attrs, RESOURCE) == GenAIFacts(
        operation="chat",
        provider="mistral_ai",
        request_model="mistral-large-latest",
        input_text="Be kind.\nTell me a joke.",
        output_text="Why did the chicken cross the road?",
    )


# -- Langfuse --------------------------------------------------------------------------------


def test_langfuse_generation_usage_buckets_and_cost_details():
    attrs = {
        "langfuse.observation.type": "generation",
        "langfuse.observation.model.name": "claude-3-7-sonnet-20250219",
        "langfuse.observation.usage_details": j(
            {
                "input": 50,
                "cache_read_input_tokens": 1000,
                "cache_creation_input_tokens": 200,
                "output": 80,
                "total": 1330,
            }
        ),
        "langfuse.observation.cost_details": j(
            {"input": 0.00015, "cache_read_input_tokens": 0.0003, "output": 0.0012, "total": 0.00165}
        ),
        "langfuse.observation.input": j([{"role": "user", "content": "hi"}]),
        "langfuse.session.id": "lf-session",
        "langfuse.user.id": "lf-user",
    }
    assert extract(attrs, RESOURCE) == GenAIFacts(
        operation="chat",
        request_model="claude-3-7-sonnet-20250219",
        input_tokens=1250,
        output_tokens=80,
        cache_read_tokens=1000,
        cache_write_tokens=200,
        total_tokens=1330,
        reported_cost_usd=Decimal("0.00165"),
        reported_input_cost_usd=Decimal("0.00045"),
        reported_output_cost_usd=Decimal("0.0012"),
    )
    assert context_ids(attrs, RESOURCE) == ("lf-session", "lf-user", "", "")


def test_langfuse_openai_shaped_usage_is_inclusive():
    attrs = {
        "langfuse.observation.type": "generation",
        "langfuse.observation.model.name": "gpt-4o",
        "langfuse.observation.usage_details": j(
            {
                "prompt_tokens": 1200,
                "completion_tokens": 300,
                "total_tokens": 1500,
                "prompt_tokens_details": {"cached_tokens": 1000},
                "completion_tokens_details": {"reasoning_tokens": 0},
            }
        ),
    }
    f = extract(attrs, RESOURCE)
    assert (f.input_tokens, f.output_tokens, f.cache_read_tokens, f.reasoning_tokens, f.total_tokens) == (
        1200,
        300,
        1000,
        0,
        1500,
    )


def test_langfuse_generation_without_usage_and_plain_span():
    gen = {
        "langfuse.observation.type": "generation",
        "langfuse.observation.model.name": "llama3",
        "langfuse.observation.input": j({"messages": [{"role": "user", "content": "Ping?"}]}),
        "langfuse.observation.output": "Pong.",
    }
    assert extract(gen, RESOURCE) == GenAIFacts(
        operation="chat", request_model="llama3", input_text="Ping?", output_text="Pong."
    )
    span = {"langfuse.observation.type": "span", "langfuse.observation.input": "x"}
    assert extract(span, RESOURCE) is None
    experiment = {
        "langfuse.observation.type": "span",
        "langfuse.experiment.id": "run-abc",
        "langfuse.experiment.name": "capital-cities",
        "session.id": "s",
    }
    assert context_ids(experiment, RESOURCE) == ("s", "", "run-abc", "capital-cities")


# -- MLflow ----------------------------------------------------------------------------------


def test_mlflow_chat_model_json_encoded_values():
    attrs = {
        "mlflow.traceRequestId": j("tr-7f3e"),
        "mlflow.spanType": j("CHAT_MODEL"),
        "mlflow.spanFunctionName": j("create"),
        "mlflow.llm.model": j("gpt-4o-mini"),
        "mlflow.llm.provider": j("openai"),
        "mlflow.chat.tokenUsage": j(
            {
                "input_tokens": 1250,
                "output_tokens": 80,
                "total_tokens": 1330,
                "cache_read_input_tokens": 1000,
                "cache_creation_input_tokens": 200,
            }
        ),
        "mlflow.llm.cost": j({"input_cost": 0.0002, "output_cost": 0.0001, "total_cost": 0.0003}),
        "mlflow.spanInputs": j({"messages": [{"role": "user", "content": "hi"}], "model": "gpt-4o-mini"}),
        "mlflow.experimentId": j("42"),
        "mlflow.trace.session": j("mlf-sess"),
    }
    assert extract(attrs, RESOURCE, "Completions") == GenAIFacts(
        operation="chat",
        provider="openai",
        request_model="gpt-4o-mini",
        input_tokens=1250,
        output_tokens=80,
        cache_read_tokens=1000,
        cache_write_tokens=200,
        total_tokens=1330,
        reported_cost_usd=Decimal("0.0003"),
        reported_input_cost_usd=Decimal("0.0002"),
        reported_output_cost_usd=Decimal("0.0001"),
    )
    assert context_ids(attrs, RESOURCE) == ("mlf-sess", "", "", "42")


def test_mlflow_usage_with_anthropic_style_input_total_decides():
    attrs = {
        "mlflow.spanType": j("LLM"),
        "mlflow.chat.tokenUsage": j(
            {
                "input_tokens": 50,
                "output_tokens": 80,
                "total_tokens": 1330,
                "cache_read_input_tokens": 1000,
                "cache_creation_input_tokens": 200,
            }
        ),
    }
    f = extract(attrs, RESOURCE)
    assert (f.operation, f.input_tokens, f.total_tokens) == ("chat", 1250, 1330)


def test_mlflow_without_usage_and_non_llm_types():
    attrs = {
        "mlflow.spanType": j("EMBEDDING"),
        "mlflow.spanInputs": j({"input": ["first text", "second text"], "model": "text-embedding-3-small"}),
        "mlflow.spanOutputs": j({"data": [{"embedding": [0.1, 0.2]}]}),
    }
    f = extract(attrs, RESOURCE)
    assert (f.operation, f.input_text, f.output_text, f.has_usage) == (
        "embeddings",
        "first text\nsecond text",
        "",
        False,
    )
    assert extract({"mlflow.spanType": j("TOOL")}, RESOURCE) == GenAIFacts(operation="execute_tool")
    assert extract({"mlflow.spanType": j("UNKNOWN"), "mlflow.spanInputs": "{}"}, RESOURCE) is None


# -- pydantic-ai / logfire -------------------------------------------------------------------


def test_pydantic_ai_agent_run_and_chat_span():
    run = {
        "agent_name": "support",
        "model_name": "gpt-4o",
        "gen_ai.usage.input_tokens": "900",
        "gen_ai.usage.output_tokens": "90",
        "pydantic_ai.all_messages": j([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]),
        "logfire.msg": "support run",
    }
    assert extract(run, RESOURCE, "support run") == GenAIFacts(operation="invoke_agent")
    chat = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "anthropic",
        "gen_ai.request.model": "claude-3-5-haiku-latest",
        "gen_ai.usage.input_tokens": "1250",
        "gen_ai.usage.output_tokens": "20",
        "gen_ai.usage.details.cache_read_tokens": "1000",
        "gen_ai.usage.details.cache_write_tokens": "200",
    }
    f = extract(chat, RESOURCE, "chat claude-3-5-haiku-latest")
    assert (f.input_tokens, f.cache_read_tokens, f.cache_write_tokens, f.total_tokens) == (
        1250,
        1000,
        200,
        1270,
    )
    tool = {
        "gen_ai.tool.name": "search",
        "gen_ai.tool.call.id": "call_1",
        "logfire.msg": "running tool: search",
    }
    assert extract(tool, RESOURCE, "running tool") == GenAIFacts(operation="execute_tool")


# -- reported cost, totals -------------------------------------------------------------------


def test_gen_ai_usage_cost_and_total_filled_or_corrected():
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "groq",
        "gen_ai.request.model": "llama-3.3-70b-versatile",
        "gen_ai.usage.input_tokens": "10",
        "gen_ai.usage.output_tokens": "5",
        "gen_ai.usage.total_tokens": "3",  # impossible: replaced by the sum
        "gen_ai.usage.cost": "0.0000123",
    }
    f = extract(attrs, RESOURCE)
    assert (f.total_tokens, f.reported_cost_usd, f.reported_input_cost_usd) == (
        15,
        Decimal("0.0000123"),
        None,
    )
    attrs["gen_ai.usage.total_tokens"] = "20"  # larger than the sum: the producer knows better
    assert extract(attrs, RESOURCE).total_tokens == 20
    del attrs["gen_ai.usage.total_tokens"]
    assert extract(attrs, RESOURCE).total_tokens == 15


# -- providers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("openai", "openai"),
        ("OpenAI", "openai"),
        ("openai.chat", "openai"),
        ("openai.responses", "openai"),
        ("Azure", "azure.ai.openai"),
        ("azure_openai", "azure.ai.openai"),
        ("azure.ai.openai", "azure.ai.openai"),
        ("az.ai.openai", "azure.ai.openai"),
        ("azure.chat", "azure.ai.openai"),
        ("az.ai.inference", "azure.ai.inference"),
        ("azure.ai.inference", "azure.ai.inference"),
        ("bedrock", "aws.bedrock"),
        ("aws_bedrock", "aws.bedrock"),
        ("AWS Bedrock", "aws.bedrock"),
        ("amazon-bedrock", "aws.bedrock"),
        ("AWS", "aws.bedrock"),
        ("bedrock.anthropic.messages", "aws.bedrock"),
        ("google", "gcp.gemini"),
        ("gemini", "gcp.gemini"),
        ("google.generative-ai", "gcp.gemini"),
        ("google_genai", "gcp.gemini"),
        ("gcp.gemini", "gcp.gemini"),
        ("vertex_ai", "gcp.vertex_ai"),
        ("google.vertex", "gcp.vertex_ai"),
        ("google.vertex.chat", "gcp.vertex_ai"),
        ("vertexai", "gcp.vertex_ai"),
        ("googleVertex.anthropic.messages", "gcp.vertex_ai"),
        ("gcp.gen_ai", "gcp.gen_ai"),
        ("mistral", "mistral_ai"),
        ("mistralai", "mistral_ai"),
        ("MistralAI", "mistral_ai"),
        ("mistral.chat", "mistral_ai"),
        ("anthropic.messages", "anthropic"),
        ("Anthropic", "anthropic"),
        ("xai", "x_ai"),
        ("grok", "x_ai"),
        ("xai.chat", "x_ai"),
        ("cohere", "cohere"),
        ("Groq", "groq"),
        ("deepseek.chat", "deepseek"),
        ("perplexity", "perplexity"),
        ("Watsonx", "ibm.watsonx.ai"),
        ("ibm.watsonx.ai", "ibm.watsonx.ai"),
        ("Ollama", "ollama"),
        ("TogetherAI", "together_ai"),
        ("togetherai.chat", "together_ai"),
        ("HuggingFace", "hugging_face"),
        ("moonshot", "moonshot_ai"),
        ("  Acme-Cloud  ", "acme-cloud"),
        ("acme.chat", "acme.chat"),
        ("", ""),
    ],
)
def test_provider_spellings(spelling, canonical):
    assert normalize_provider(spelling) == canonical


@pytest.mark.parametrize(
    ("provider", "system", "canonical"),
    [
        ("azure", "openai", "azure.ai.openai"),
        ("azure", "mistralai", "azure.ai.inference"),
        ("aws", "anthropic", "aws.bedrock"),
        ("google", "vertexai", "gcp.vertex_ai"),
        ("google", "", "gcp.gemini"),
        ("", "mistralai", "mistral_ai"),
        ("openai", "openai", "openai"),
    ],
)
def test_openinference_provider_and_system_combine(provider, system, canonical):
    attrs = {"openinference.span.kind": "LLM", "llm.model_name": "m"}
    if provider:
        attrs["llm.provider"] = provider
    if system:
        attrs["llm.system"] = system
    assert extract(attrs, RESOURCE).provider == canonical


# -- spans without GenAI semantics -----------------------------------------------------------

HTTP_SERVER = {
    "http.request.method": "POST",
    "http.route": "/v1/chat",
    "url.path": "/v1/chat",
    "url.scheme": "https",
    "http.response.status_code": "200",
    "server.address": "api.openai.com",
    "network.protocol.version": "1.1",
    "user_agent.original": "curl/8.5",
    "session.id": "web-session-1",
    "user.id": "u-42",
}
DB_CLIENT = {
    "db.system.name": "postgresql",
    "db.namespace": "shop",
    "db.operation.name": "SELECT",
    "db.query.text": "SELECT * FROM orders WHERE id = $1",
    "server.address": "db.internal",
    "server.port": "5432",
}


def test_http_and_db_spans_are_not_genai_but_still_have_context():
    resource = {
        **RESOURCE,
        "tracehouse.run.id": "run-2024-10-01",
        "tracehouse.experiment.name": "prompt-v2",
        "user.id": "resource-user",
    }
    assert extract(HTTP_SERVER, resource, "POST /v1/chat") is None
    assert extract(DB_CLIENT, resource, "SELECT shop.orders") is None
    assert context_ids(HTTP_SERVER, resource) == ("web-session-1", "u-42", "run-2024-10-01", "prompt-v2")
    assert context_ids(DB_CLIENT, resource) == ("", "resource-user", "run-2024-10-01", "prompt-v2")
    assert context_ids(DB_CLIENT, RESOURCE) == ("", "", "", "")
    assert context_ids({}, {}) == ("", "", "", "")


def test_context_ids_span_wins_over_resource_and_priority_between_conventions():
    span = {
        "tracehouse.run.id": "span-run",
        "gen_ai.conversation.id": "conv",
        "langfuse.session.id": "lf",
        "enduser.id": "end-user",
        "mlflow.runId": j("mlflow-run"),
    }
    resource = {
        "tracehouse.run.id": "resource-run",
        "tracehouse.experiment.name": "exp",
        "session.id": "res-sess",
    }
    assert context_ids(span, resource) == ("conv", "end-user", "span-run", "exp")
    assert context_ids({"mlflow.runId": j("mlflow-run"), "session.id": ""}, {}) == ("", "", "mlflow-run", "")


# -- garbage ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("12", 12),
        ("12.0", 12),
        (" 7 ", 7),
        ("1e3", 1000),
        ("", None),
        (None, None),
        ("abc", None),
        ("-5", None),
        ("NaN", None),
        ("inf", None),
        ("true", None),
        ("9" * 5000, None),
        ("[1, 2]", None),
    ],
)
def test_parse_int(raw, value):
    assert parse_int(raw) == value


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("0.0021", Decimal("0.0021")),
        (" 1e-3 ", Decimal("0.001")),
        (0.5, Decimal("0.5")),
        (2, Decimal(2)),
        ("0", Decimal(0)),
        ("NaN", None),
        ("Infinity", None),
        ("-1", None),
        ("USD 3", None),
        (True, None),
        (None, None),
        (float("nan"), None),
    ],
)
def test_parse_decimal(raw, value):
    assert parse_decimal(raw) == value


GARBAGE_SPANS = [
    {
        "gen_ai.operation.name": "chat",
        "gen_ai.usage.input_tokens": "lots",
        "gen_ai.usage.output_tokens": "-3",
    },
    {"gen_ai.system": "openai", "gen_ai.usage.input_tokens": "1e999", "gen_ai.usage.total_tokens": "NaN"},
    {"gen_ai.system": "", "gen_ai.request.model": "", "gen_ai.input.messages": "[{not json"},
    {
        "gen_ai.system": "openai",
        "gen_ai.input.messages": '[1, null, true, {"parts": 5}]',
        "gen_ai.prompt.0.content": "",
    },
    {"openinference.span.kind": "LLM", "llm.token_count.prompt": "x", "llm.cost.total": "free"},
    {"openinference.span.kind": "", "input.value": '{"truncated'},
    {
        "ai.operationId": "ai.generateText.doGenerate",
        "ai.model.provider": "anthropic.messages",
        "ai.usage.inputTokens": "5",
        "ai.usage.cachedInputTokens": "2",
        "ai.response.providerMetadata": '{"anthropic": {"cacheCreationInputTokens": "many"',
    },
    {
        "ai.operationId": "ai.streamText.doStream",
        "ai.model.provider": "amazon-bedrock",
        "ai.usage.inputTokens": "5",
        "ai.response.providerMetadata": '["cacheWriteInputTokens"]',
    },
    {
        "langfuse.observation.type": "generation",
        "langfuse.observation.usage_details": "[1,2]",
        "langfuse.observation.cost_details": '{"input": "abc", "total": null}',
    },
    {
        "langfuse.observation.type": "generation",
        "langfuse.observation.usage_details": '{"input": true, "output": {}}',
    },
    {
        "mlflow.spanType": '"LLM',
        "mlflow.chat.tokenUsage": '"{\\"input_tokens\\": 3}"',
        "mlflow.llm.cost": "nope",
    },
    {"mlflow.spanType": "42", "mlflow.spanInputs": '{"a": [[[[[[]]]]]]}'},
    {"llm.request.type": "chat", "gen_ai.prompt.0.content": '[{"type": "text", "text": "hi"}]'},
    {
        "gen_ai.operation.name": "   ",
        "gen_ai.usage.cache_read.input_tokens": "5",
        "gen_ai.usage.input_tokens": "0",
    },
]


@pytest.mark.parametrize("attrs", GARBAGE_SPANS)
def test_garbage_values_never_raise(attrs):
    f = extract(attrs, {"tracehouse.run.id": "\x00"}, "\udcff")
    assert f is None or isinstance(f, GenAIFacts)
    if f is not None:
        for n in (f.input_tokens, f.output_tokens, f.total_tokens, f.cache_read_tokens, f.cache_write_tokens):
            assert n is None or (isinstance(n, int) and n >= 0)
    context_ids(attrs, {})


def test_garbage_is_ignored_field_by_field():
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": "lots",
        "gen_ai.usage.prompt_tokens": "11",  # the older name is used when the newer is garbage
        "gen_ai.usage.output_tokens": "-3",
        "gen_ai.usage.cost": "free",
    }
    assert extract(attrs, RESOURCE) == GenAIFacts(
        operation="chat", provider="openai", request_model="gpt-4o", input_tokens=11, total_tokens=11
    )
    # The double-encoded MLflow usage is still read.
    mlflow = extract(
        {"mlflow.spanType": j("LLM"), "mlflow.chat.tokenUsage": j(j({"input_tokens": 3}))}, RESOURCE
    )
    assert (mlflow.input_tokens, mlflow.total_tokens) == (3, 3)


# -- evaluation events -----------------------------------------------------------------------


def test_evaluation_result_canonical_event_kept_as_is_but_copied():
    attrs = {
        "gen_ai.evaluation.name": "Relevance",
        "gen_ai.evaluation.score.value": "4.0",
        "gen_ai.evaluation.score.label": "relevant",
        "gen_ai.evaluation.explanation": "On topic.",
        "gen_ai.response.id": "chatcmpl-123",
    }
    out = normalize_evaluation_event("gen_ai.evaluation.result", attrs)
    assert out == attrs and out is not attrs


def test_evaluation_azure_sample_spelling():
    # Azure AI Foundry samples: event gen_ai.evaluation.<name> with score / reasoning / result.
    attrs = {
        "gen_ai.evaluation.name": "Relevance",
        "gen_ai.evaluation.score": "0.8",
        "gen_ai.evaluation.reasoning": "Mostly on topic.",
        "gen_ai.evaluation.result": "pass",
    }
    assert normalize_evaluation_event("gen_ai.evaluation.Relevance", attrs) == {
        **attrs,
        "gen_ai.evaluation.score.value": "0.8",
        "gen_ai.evaluation.score.label": "pass",
        "gen_ai.evaluation.explanation": "Mostly on topic.",
    }


def test_evaluation_2024_user_feedback_draft():
    attrs = {"gen_ai.response.id": "chatcmpl-9", "gen_ai.evaluation.score": "-0.5", "comment": "Too long."}
    assert normalize_evaluation_event("gen_ai.evaluation.user_feedback", attrs) == {
        **attrs,
        "gen_ai.evaluation.name": "user_feedback",
        "gen_ai.evaluation.score.value": "-0.5",
        "gen_ai.evaluation.explanation": "Too long.",
    }


def test_evaluation_vendor_pattern_and_label_sent_as_score():
    attrs = {"gen_ai.evaluation.score": "relevant", "response_id": "r-1"}
    assert normalize_evaluation_event("gen_ai.openai.evaluation.relevance", attrs) == {
        **attrs,
        "gen_ai.evaluation.name": "relevance",
        "gen_ai.evaluation.score.label": "relevant",
        "gen_ai.response.id": "r-1",
    }
    boolean = normalize_evaluation_event(
        "gen_ai.evaluation.result", {"evaluation.name": "exact", "score": "true"}
    )
    assert boolean["gen_ai.evaluation.name"] == "exact" and boolean["gen_ai.evaluation.score.value"] == "1"


def test_evaluation_canonical_keys_are_never_overwritten():
    attrs = {
        "gen_ai.evaluation.name": "Groundedness",
        "gen_ai.evaluation.metric": "other",
        "gen_ai.evaluation.score.value": "3",
        "gen_ai.evaluation.score": "5",
        "gen_ai.evaluation.score.label": "ok",
        "gen_ai.evaluation.verdict": "bad",
    }
    assert normalize_evaluation_event("gen_ai.evaluation.result", attrs) == attrs


@pytest.mark.parametrize(
    "name", ["gen_ai.client.inference.operation.details", "gen_ai.choice", "exception", ""]
)
def test_other_events_are_returned_unchanged(name):
    attrs = {"gen_ai.evaluation.score": "1", "exception.type": "ValueError"}
    assert normalize_evaluation_event(name, attrs) is attrs
