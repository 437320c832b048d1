"""`tracehouse.annotate(...)`: feedback or an expectation on a span, a trace or an eval example.

An annotation (name, kind, value of type number/bool/text, user, rationale) is sent at once to
the collector's REST API (`POST /api/v1/annotations`), which needs a key with the `annotate`
scope when keys are required. Feedback with a number or bool value joins the accuracy
aggregates as a score (the collector's `otel_scores`, Source 'annotation').
"""

from __future__ import annotations

import os
from typing import Any, Literal

from tracehouse._evals import EvalExample

AnnotationKind = Literal["feedback", "expectation"]
ValueType = Literal["number", "bool", "text"]


def _target(
    span: Any, trace_id: Any, span_id: Any, example: EvalExample | None, response: Any, last_llm_call: bool
) -> dict[str, str]:
    from tracehouse import _score

    if example is not None:
        return {"run_id": example.run.id, "dataset": example.dataset, "example_id": example.example_id}
    if response is not None or last_llm_call:
        tid, sid, _ = _score._llm_call(response, last_llm_call)
    else:
        tid, sid, run_id = _score._subject(span, trace_id, span_id, None)
        if run_id:
            raise ValueError("nothing to annotate: no span is active; pass span=, trace_id= (and span_id=) or example=")
    return {"trace_id": f"{tid:032x}", **({"span_id": f"{sid:016x}"} if sid else {})}


def annotate(
    name: str,
    value: float | int | bool | str,
    *,
    kind: AnnotationKind = "feedback",
    value_type: ValueType | None = None,
    user: str | None = None,
    rationale: str | None = None,
    span: Any = None,
    trace_id: str | int | None = None,
    span_id: str | int | None = None,
    example: EvalExample | None = None,
    run_id: str | None = None,
    dataset: str | None = None,
    example_id: str | int | None = None,
    response: Any = None,
    last_llm_call: bool = False,
    server: str | None = None,
    api_key: str | None = None,
) -> str:
    """Annotate a span, a trace or an eval example; returns the annotation's id.

    `kind`: "feedback" (a judgement; its number or bool joins the accuracy aggregates as a
    score) or "expectation" (what the right answer was). `value_type` defaults from the value:
    bool -> "bool", int/float -> "number", str -> "text". What is annotated, first match wins:
    `example` (an EvalExample) or `run_id` + `dataset` + `example_id`; `response` or
    `last_llm_call` (as in `tracehouse.score`); `span`; `trace_id` (with `span_id` one span);
    else the current span. Sent to `server` (default TRACEHOUSE_SERVER, else the collector this
    process exports to) at once; raises tracehouse.TracehouseError when it refuses.
    """
    from tracehouse._client import Client

    if example_id is not None:
        if not run_id or not dataset:
            raise ValueError("example_id needs run_id and dataset")
        fields: dict[str, Any] = {"run_id": run_id, "dataset": dataset, "example_id": str(example_id)}
    else:
        fields = _target(span, trace_id, span_id, example, response, last_llm_call)
    body = {
        **fields,
        "name": name,
        "kind": kind,
        "value": value,
        "value_type": value_type,
        "user": user if user is not None else os.environ.get("TRACEHOUSE_USER") or _login(),
        "rationale": rationale,
        "source": "sdk",
    }
    client = Client(server or os.environ.get("TRACEHOUSE_SERVER") or _collector_url(), api_key)
    answer: dict[str, Any] = client._json("POST", "/api/v1/annotations", body)
    return str(answer["id"])


def _collector_url() -> str:
    from tracehouse._run_transport import base_url, logs_url

    return base_url(logs_url())


def _login() -> str:
    try:
        import getpass

        return getpass.getuser()
    except (ImportError, KeyError, OSError):
        return ""

