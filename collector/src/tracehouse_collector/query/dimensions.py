"""The kinds of aggregate and the dimensions they group by, with each dimension's SQL.

Apart from query/aggregates.py, which plans and runs the aggregates, so that the CLI builds
`tracehouse query`'s parser (kinds, the `--by` help) without loading the query engine.
"""

from __future__ import annotations

from typing import NamedTuple

from tracehouse_collector.query.model_identity import MODEL_SQL, ROLLUP_MODEL_SQL

KINDS = ("latency", "cost", "accuracy", "errors")


class Dim(NamedTuple):
    raw: str  # expression over otel_traces
    rollup: str | None  # expression over the rollup tables, None if they cannot group by it
    time: bool = False


DIMENSIONS: dict[str, Dim] = {
    "model": Dim(MODEL_SQL, ROLLUP_MODEL_SQL),
    "request_model": Dim("GenAIRequestModel", None),
    "response_model": Dim("GenAIResponseModel", None),
    "provider": Dim("GenAIProvider", "GenAIProvider"),
    "operation": Dim("GenAIOperation", "GenAIOperation"),
    "service": Dim("ServiceName", "ServiceName"),
    "span": Dim("SpanName", "SpanName"),
    "experiment": Dim("ExperimentName", "ExperimentName"),
    "run": Dim("RunId", None),
    "session": Dim("SessionId", None),
    "user": Dim("UserId", None),
    "minute": Dim("toStartOfMinute(toDateTime(Timestamp, 'UTC'))", "toDateTime(Start, 'UTC')", True),
    "hour": Dim(
        "toStartOfHour(toDateTime(Timestamp, 'UTC'))", "toStartOfHour(toDateTime(Start, 'UTC'))", True
    ),
    "day": Dim("toStartOfDay(toDateTime(Timestamp, 'UTC'))", "toStartOfDay(toDateTime(Start, 'UTC'))", True),
}
