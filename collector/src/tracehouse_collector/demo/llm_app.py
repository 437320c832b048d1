"""The demo's LLM traffic: a support agent on the real `openai` client against the fake server
(sessions, users, a tool call, a failure, scored evaluation runs), and a backdated history of
LLM calls so charts have a time series."""

from __future__ import annotations

import json
import math
import random
import time
from typing import Any

from tracehouse_collector.demo import evals as demo_evals
from tracehouse_collector.demo.fake_openai import (
    _EVAL_PREFIX,
    _EVAL_REVIEWS,
    _WEATHER_TOOL,
    FAIL_MARKER,
    MODELS,
    start_fake_openai,
)
from tracehouse_collector.demo.summary import Summary

# -- the agent app ----------------------------------------------------------------------------

_DOCS = {
    "refund": "Refunds are issued within 14 days of purchase to the original payment method.",
    "shipping": "Standard shipping takes 3-5 business days; express ships the next day.",
    "warranty": "Hardware carries a two year warranty covering manufacturing defects.",
    "password": "Passwords are reset from the sign-in page with the 'Forgot password' link.",
}

_DOCS_SOURCE = "support-docs"


def _retrieve(question: str) -> list[tuple[str, float]]:
    """(document key, relevance score) of the help articles a question names, best first: the
    share of the article's words the question uses (the shipping article when it names none)."""
    words = set(question.lower().replace("?", " ").split())
    hits = []
    for key, text in _DOCS.items():
        if key in question.lower():
            vocab = set(text.lower().rstrip(".").split())
            hits.append((key, round(0.5 + 0.5 * len(words & vocab) / len(vocab), 3)))
    return sorted(hits, key=lambda h: -h[1]) or [("shipping", 0.25)]


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


def agent_app(provider: Any, rng: random.Random, summary: Summary) -> None:
    import openai
    import tracehouse
    from opentelemetry import trace as otel_trace
    from tracehouse.instrumentors.openai import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    httpd = start_fake_openai()
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1", api_key="demo-key", max_retries=0
    )

    # As the GenAI conventions name them: the retrieval span `retrieval {data source}` with the
    # query and the documents it returned, the tool span with the call's arguments and result.
    @tracehouse.trace(kind="retrieval", name=f"retrieval {_DOCS_SOURCE}")
    def retrieve_documents(question: str) -> list[str]:
        hits = _retrieve(question)
        span = otel_trace.get_current_span()
        span.set_attribute("gen_ai.data_source.id", _DOCS_SOURCE)
        span.set_attribute("gen_ai.retrieval.query.text", question)
        span.set_attribute(
            "gen_ai.retrieval.documents",
            json.dumps([{"id": key, "score": score, "content": _DOCS[key]} for key, score in hits]),
        )
        return [_DOCS[key] for key, _ in hits]

    @tracehouse.trace(kind="tool", name="get_weather")
    def get_weather(call_id: str, arguments: str) -> str:
        city = json.loads(arguments)["city"]
        temps = {"Lisbon": 21, "Berlin": 9}
        result = f"{city}: {temps.get(city, 15)} C, light wind"
        span = otel_trace.get_current_span()
        span.set_attribute("gen_ai.tool.call.id", call_id)
        span.set_attribute("gen_ai.tool.call.arguments", arguments)
        span.set_attribute("gen_ai.tool.call.result", json.dumps({"city": city, "forecast": result}))
        return result

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
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "You are a helpful support agent. Context:\n" + "\n".join(docs)},
            {"role": "user", "content": question},
        ]
        text, tool_calls = chat(model, messages, stream=False, tools=True)
        if tool_calls:
            call = tool_calls[0]
            result = get_weather(call.id, call.function.arguments)
            messages.append({"role": "assistant", "content": None, "tool_calls": [call.model_dump()]})
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
            text, _ = chat(model, messages, stream=stream, tools=False)
        elif stream:
            text, _ = chat(model, messages, stream=True, tools=False)
        # Evaluations of this turn: the answer's relevance judges the LLM call that wrote it
        # (so it has a model), the user's helpfulness rating the whole agent turn (this span).
        tracehouse.score("relevance", round(rng.uniform(0.55, 1.0), 2), last_llm_call=True)
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
    def evaluate(model: str, review: str, truth: str) -> str:
        resp = client.chat.completions.create(
            model=model, temperature=0.0, messages=[{"role": "user", "content": _EVAL_PREFIX + review}]
        )
        answer = (resp.choices[0].message.content or "").strip()
        tracehouse.score("accuracy", 1.0 if answer == truth else 0.0, response=resp)  # on the LLM call it judges
        return answer

    for variant, model in (("v1", "gpt-4o-mini"), ("v2", "gpt-4o")):
        params = {"prompt": variant, "model": model, "temperature": 0.0, "examples": len(_EVAL_REVIEWS)}
        with tracehouse.run("demo-prompt-eval", name=f"prompt-{variant}-{model}", params=params) as run:
            correct = 0
            for step, (review, truth) in enumerate(_EVAL_REVIEWS):
                with demo_evals.example(run, step, review, truth) as ex:  # each review: an eval example
                    answer = evaluate(model, review, truth)
                    demo_evals.judged(ex, answer, truth, summary)
                correct += answer == truth
                summary.llm_calls += 1
                summary.scores += 1
                run.log_metric("running_accuracy", correct / (step + 1), step=step)
                summary.metric_points += 1
            run.log_metric("accuracy", correct / len(_EVAL_REVIEWS))
            summary.metric_points += 1
            summary.runs += 1


# -- backdated history --------------------------------------------------------------------------


def history(provider: Any, rng: random.Random, days: int, summary: Summary) -> None:
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
                attrs: dict[str, Any] = {
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
