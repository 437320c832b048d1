"""What the demo sent, as the command prints it, and the errors a user can fix."""

from __future__ import annotations

from dataclasses import dataclass, field

from tracehouse_collector.demo.fake_openai import MODELS


class DemoError(Exception):
    """A problem the user can fix (nothing listens, the server refused the data)."""


@dataclass
class Summary:
    llm_calls: int = 0
    agent_turns: int = 0
    errors: int = 0
    scores: int = 0
    sessions: set[str] = field(default_factory=set)
    history_spans: int = 0
    runs: int = 0
    metric_points: int = 0
    artifacts: int = 0
    models: int = 0
    eval_examples: int = 0
    annotations: int = 0
    eval_runs: list[str] = field(default_factory=list)  # the runs whose examples compare
    notes: list[str] = field(default_factory=list)


def format_summary(summary: Summary, server: str) -> str:
    s = server.rstrip("/")
    lines = [
        f"tracehouse demo: sent to {s}",
        f"  agent app     {summary.agent_turns} turns in {len(summary.sessions)} sessions, {summary.llm_calls} LLM calls "
        f"({', '.join(MODELS)}), {summary.errors} failed on purpose, {summary.scores} scores",
        f"  history       {summary.history_spans} backdated spans",
        f"  runs          {summary.runs} runs, {summary.metric_points} metric points, {summary.artifacts} artifacts, "
        f"{summary.models} model",
        f"  evals         {summary.eval_examples} eval examples linked to their traces, {summary.annotations} annotations",
        *(f"  note: {note}" for note in summary.notes),
        "",
        f"Open the UI:  {s}/",
        "Try:",
        f"  tracehouse traces list --server {s}",
        f"  tracehouse query latency --by model --server {s}",
        f"  tracehouse runs list --server {s}",
        *([f"  tracehouse runs compare --evals {' '.join(summary.eval_runs)} --server {s}"] if summary.eval_runs else []),
        "(the collector writes in batches: give it a second or two before querying)",
    ]
    return "\n".join(lines) + "\n"
