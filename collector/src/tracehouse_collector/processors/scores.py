"""Evaluation results sent as OTLP log records: give them the canonical `gen_ai.evaluation.*` keys.

A `gen_ai.evaluation.result` log record (OpenTelemetry GenAI semantic conventions; the SDK's
`tracehouse.score()` sends one) carries the evaluated span's trace and span ids. Its older and
vendor spellings (a `gen_ai.evaluation.<method>` event, `gen_ai.evaluation.score`, `comment`,
...) get the canonical keys added here, exactly as the LLM processor does for span events, and
the `otel_scores_from_logs_mv` view copies them into `otel_scores`. Originals are kept.
"""

from __future__ import annotations

from tracehouse_collector.processors.normalize import normalize_evaluation_event
from tracehouse_collector.processors.rows import Rows


def normalize_log_scores(rows: Rows) -> None:
    for row in rows.tables.get("otel_logs", ()):
        attrs = row["LogAttributes"]
        name = row.get("EventName") or attrs.get("event.name", "")
        if name and "evaluation" in name:
            row["LogAttributes"] = normalize_evaluation_event(name, attrs)
