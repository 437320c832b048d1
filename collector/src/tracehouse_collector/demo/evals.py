"""The demo's eval examples and annotations: each labelling call of the prompt-eval runs
(llm_app.py) is one example of the `review-sentiment` dataset, made inside its
`run.eval_example` block so the call's trace is linked to it; a reviewer marks every wrong
label: feedback `human_review` (false, with a rationale) on the LLM call, and the expected
label as an expectation on the example. Both runs label the same reviews, so the Evals view
and the regression view (`runs compare --evals`) have examples that got better and worse."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from tracehouse_collector.demo.summary import Summary

DATASET = "review-sentiment"
REVIEWER = "reviewer-ana"


@contextlib.contextmanager
def example(run: Any, index: int, review: str, truth: str) -> Iterator[Any]:
    """The block one review is labelled in (the LLM call made inside is linked to it)."""
    with run.eval_example(
        DATASET, f"review-{index + 1:02d}", inputs={"review": review}, references={"label": truth}
    ) as ex:
        yield ex


def judged(ex: Any, answer: str, truth: str, summary: Summary) -> None:
    """Record the model's label and its score; annotate it when it is wrong."""
    import tracehouse

    ok = answer == truth
    ex.record(outputs={"label": answer}, scores={"exact_match": 1.0 if ok else 0.0})
    summary.eval_examples += 1
    if ex.run.id not in summary.eval_runs:
        summary.eval_runs.append(ex.run.id)
    if ok:
        return
    try:
        tracehouse.annotate(
            "human_review", False, last_llm_call=True, user=REVIEWER,
            rationale=f"the review reads {truth}, the model said {answer}",
        )  # fmt: skip
        tracehouse.annotate("expected_label", truth, kind="expectation", example=ex, user=REVIEWER)
        summary.annotations += 2
    except tracehouse.TracehouseError as exc:  # e.g. a key without the annotate scope
        if not any(n.startswith("annotations not sent") for n in summary.notes):
            summary.notes.append(f"annotations not sent: {exc}")
