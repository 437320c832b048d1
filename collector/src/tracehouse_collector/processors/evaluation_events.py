"""Evaluation results sent as events (span events or log records): canonical keys added.

The canonical event is OTel GenAI's `gen_ai.evaluation.result` with `gen_ai.evaluation.name`,
`gen_ai.evaluation.score.value`, `gen_ai.evaluation.score.label` and
`gen_ai.evaluation.explanation`; the older and vendor spellings below are read too.
"""

from __future__ import annotations

import math

from tracehouse_collector.processors import semconv
from tracehouse_collector.processors.values import first as _first

__all__ = ["EVALUATION_EVENT", "normalize_evaluation_event"]


EVALUATION_EVENT = semconv.GEN_AI_EVALUATION_RESULT
_EVAL_NAME = semconv.GEN_AI_EVALUATION_NAME
_EVAL_SCORE = semconv.GEN_AI_EVALUATION_SCORE_VALUE
_EVAL_LABEL = semconv.GEN_AI_EVALUATION_SCORE_LABEL
_EVAL_EXPLANATION = semconv.GEN_AI_EVALUATION_EXPLANATION
_RESPONSE_ID = semconv.GEN_AI_RESPONSE_ID

# Older and other spellings of the same facts: the 2024 draft (event gen_ai.evaluation.<method>,
# e.g. gen_ai.evaluation.user_feedback, with gen_ai.evaluation.score and a `comment`), Microsoft's
# Azure AI Foundry samples (gen_ai.evaluation.<name> with gen_ai.evaluation.score /
# gen_ai.evaluation.reasoning / gen_ai.evaluation.result as the label), OpenInference's
# evaluation.* attribute names.
_EVAL_NAME_KEYS = ("gen_ai.evaluation.metric", "evaluation.name", "gen_ai.evaluator.name")
_EVAL_SCORE_KEYS = ("gen_ai.evaluation.score", "evaluation.score", "score")
_EVAL_LABEL_KEYS = (
    "gen_ai.evaluation.label",
    "gen_ai.evaluation.result",
    "gen_ai.evaluation.verdict",
    "evaluation.label",
    "label",
)
_EVAL_EXPLANATION_KEYS = (
    "gen_ai.evaluation.reasoning",
    "gen_ai.evaluation.comment",
    "evaluation.explanation",
    "explanation",
    "comment",
)
_RESPONSE_ID_KEYS = ("gen_ai.evaluation.response_id", "response_id")


def _evaluation_method(name: str) -> str | None:
    """The evaluation named by an event name, '' for the canonical event, None for others."""
    if name == EVALUATION_EVENT:
        return ""
    if name.startswith("gen_ai.evaluation."):
        return name[len("gen_ai.evaluation.") :]
    if name.startswith("gen_ai.") and ".evaluation." in name:
        return name.split(".evaluation.", 1)[1]  # vendor pattern gen_ai.<system>.evaluation.<method>
    return None


def _score(value: str) -> str | None:
    """The score as sent when it is a finite number, else None."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return value.strip() if math.isfinite(f) else None


def normalize_evaluation_event(name: str, attrs: dict[str, str]) -> dict[str, str]:
    """For an evaluation-result event (gen_ai.evaluation.result and its older spellings),
    ``attrs`` with the canonical keys added where they are missing; originals are kept and a
    canonical key already present is never overwritten. Other events: ``attrs`` itself."""
    method = _evaluation_method(name or "")
    if method is None:
        return attrs
    out = dict(attrs)
    get = attrs.get
    if not get(_EVAL_NAME):
        v = _first(get, _EVAL_NAME_KEYS) or method
        if v:
            out[_EVAL_NAME] = v
    label = ""
    if not get(_EVAL_LABEL):
        label = _first(get, _EVAL_LABEL_KEYS)
    if not get(_EVAL_SCORE):
        raw = _first(get, _EVAL_SCORE_KEYS).strip()
        if raw:
            score = _score(raw)
            if score is None and raw.lower() in ("true", "false"):
                score = "1" if raw.lower() == "true" else "0"
            if score is not None:
                out[_EVAL_SCORE] = score
            elif not label and not get(_EVAL_LABEL):
                label = raw  # "pass" / "relevant" sent as the score is a label
    if label:
        out[_EVAL_LABEL] = label
    if not get(_EVAL_EXPLANATION):
        v = _first(get, _EVAL_EXPLANATION_KEYS)
        if v:
            out[_EVAL_EXPLANATION] = v
    if not get(_RESPONSE_ID):
        v = _first(get, _RESPONSE_ID_KEYS)
        if v:
            out[_RESPONSE_ID] = v
    return out
